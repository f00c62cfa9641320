//! What goes over an agent socket, for both servers: the WebSocket type and
//! its buffer sizes, the `lt:{i}:{t_ns}` stamp load-test events carry, and (in
//! [`socketio`]) the Engine.IO / Socket.IO framing the baseline speaks. No I/O
//! here: the clients in `agents` use it.

pub mod socketio;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Small buffers: the default 128 KiB read buffer would cost ~2 GiB of client
/// memory for 15,000 sockets. Frames here are tiny.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// The stamp of event `i` meant to be sent at `t_ns`, as text: a `--via slack`
/// mention carries it in its text, a `--via clickup` task as its name.
pub fn stamp_text(i: u64, t_ns: u64) -> String {
    format!("lt:{i}:{t_ns}")
}

/// `(i, t_ns)` of a load-test event's `data`: fields of an API event, or the
/// `lt:{i}:{t_ns}` a `--via slack` mention carries in its text and a `--via clickup`
/// task in its name.
pub fn stamp(data: &Value) -> Option<(u64, u64)> {
    if let (Some(i), Some(t)) = (data.get("i"), data.get("t_ns")) {
        return Some((i.as_u64()?, t.as_u64()?));
    }
    let text = data
        .get("text")
        .or_else(|| data.get("task")?.get("name"))?
        .as_str()?;
    let (_, rest) = text.split_once("lt:")?;
    let (i, t) = rest.split_once(':')?;
    Some((i.parse().ok()?, t.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamps_come_from_api_fields_a_slack_mention_or_a_task_name() {
        assert_eq!(stamp(&json!({"i": 7, "t_ns": 42})), Some((7, 42)));
        let wake = json!({"text": "<@U0190ABC> lt:12:1700000000123456789", "channel": "C1"});
        assert_eq!(stamp(&wake), Some((12, 1_700_000_000_123_456_789)));
        assert_eq!(stamp(&json!({"text": "no stamp here"})), None);
        let task = json!({"task": {"id": "lt-9-3-44", "name": "lt:3:44"}, "change": "created"});
        assert_eq!(stamp(&task), Some((3, 44)));
        assert_eq!(stamp_text(3, 44), "lt:3:44");
        assert_eq!(stamp(&json!({"i": "7", "t_ns": 42})), None);
    }
}
