//! Writing server frames. [`encode_event`] is the hot path: it writes an inbox
//! event from its stored pieces without building a `serde_json::Value`.

use chrono::{DateTime, Utc};
use std::fmt::Write;

use crate::ids::{EventId, Seq};
use crate::server::{EventType, ServerMsg};
use crate::time::{TS_LEN, push_ts};

/// `data_json` must be valid JSON (it is stored that way) and is copied verbatim.
pub fn encode_event(
    kind: EventType,
    id: EventId,
    seq: Seq,
    ts: DateTime<Utc>,
    trace_id: Option<&str>,
    data_json: &str,
) -> String {
    let mut out =
        String::with_capacity(96 + TS_LEN + data_json.len() + trace_id.map_or(0, |t| t.len() + 16));
    out.push_str("{\"type\":\"");
    out.push_str(kind.as_str());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "\",\"id\":\"{}\",\"seq\":{},\"ts\":\"",
        id.as_uuid().hyphenated(),
        seq.get()
    );
    push_ts(&mut out, &ts);
    out.push('"');
    if let Some(trace) = trace_id {
        out.push_str(",\"trace_id\":");
        // A string always serializes.
        out.push_str(&serde_json::to_string(trace).unwrap_or_else(|_| "null".into()));
    }
    out.push_str(",\"data\":");
    out.push_str(data_json);
    out.push('}');
    out
}

/// Any server message as a frame. These types always serialize; should that ever
/// fail, the result is an `internal` error frame rather than a panic.
pub fn encode(msg: &ServerMsg) -> String {
    serde_json::to_string(msg).unwrap_or_else(|_| {
        r#"{"type":"error","data":{"code":"internal","message":"encoding failed"}}"#.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::EventFrame;
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn case(trace: Option<&str>, data: Value) {
        let id = EventId::new_v7();
        let ts = Utc.with_ymd_and_hms(2026, 11, 22, 9, 1, 3).unwrap()
            + chrono::Duration::milliseconds(45);
        let fast = encode_event(
            EventType::WakeUp,
            id,
            Seq::new(42),
            ts,
            trace,
            &data.to_string(),
        );
        let msg = ServerMsg::event(
            EventType::WakeUp,
            EventFrame {
                id,
                seq: Seq::new(42),
                ts,
                trace_id: trace.map(str::to_owned),
                data,
            },
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&fast).unwrap(), msg);
        assert_eq!(
            serde_json::from_str::<Value>(&fast).unwrap(),
            serde_json::from_str::<Value>(&encode(&msg)).unwrap()
        );
    }

    #[test]
    fn fast_path_matches_serde() {
        case(None, json!({}));
        case(
            Some("trace-1"),
            json!({"text": "quote \" and \\ and é", "n": [1, 2.5, null]}),
        );
        case(Some("we\"ird\n"), json!({"nested": {"a": {"b": true}}}));
    }
}
