//! The raw Engine.IO v4 / Socket.IO v5 framing the clients of the Socket.IO
//! baseline (`loadtest/peers/socketio`) speak over a plain WebSocket (see that
//! folder's README). One text frame = one packet.

use anyhow::{Result, bail};
use serde_json::Value;

/// The namespace the baseline serves agents on.
pub const NSP: &str = "/agents";

/// One Engine.IO packet, with the Socket.IO packet inside `4` messages.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Open(&'a str),
    Close,
    Ping,
    Pong,
    Noop,
    Connect {
        nsp: &'a str,
        payload: &'a str,
    },
    Disconnect {
        nsp: &'a str,
    },
    /// `payload` is the JSON array `["name", arg]`.
    Event {
        nsp: &'a str,
        payload: &'a str,
    },
    ConnectError {
        nsp: &'a str,
        payload: &'a str,
    },
    Other(&'a str),
}

pub fn parse(frame: &str) -> Result<Packet<'_>> {
    let mut chars = frame.char_indices();
    let Some((_, eio)) = chars.next() else {
        bail!("empty Engine.IO packet");
    };
    let rest = &frame[eio.len_utf8()..];
    Ok(match eio {
        '0' => Packet::Open(rest),
        '1' => Packet::Close,
        '2' => Packet::Ping,
        '3' => Packet::Pong,
        '6' => Packet::Noop,
        '4' => {
            let Some(sio) = rest.chars().next() else {
                bail!("empty Socket.IO packet");
            };
            let body = &rest[1..];
            // Namespace: `/name,` (omitted for `/`), then an optional ack id.
            let (nsp, payload) = match body.strip_prefix('/') {
                Some(_) => match body.find(',') {
                    Some(comma) => (&body[..comma], &body[comma + 1..]),
                    None => (body, ""),
                },
                None => ("/", body),
            };
            let payload = payload.trim_start_matches(|c: char| c.is_ascii_digit());
            match sio {
                '0' => Packet::Connect { nsp, payload },
                '1' => Packet::Disconnect { nsp },
                '2' => Packet::Event { nsp, payload },
                '4' => Packet::ConnectError { nsp, payload },
                _ => Packet::Other(frame),
            }
        }
        _ => Packet::Other(frame),
    })
}

/// The `event` pushes carry `{type,id,ts,data}`; returns `data`.
pub fn event_data(payload: &str) -> Option<Value> {
    let Value::Array(mut items) = serde_json::from_str(payload).ok()? else {
        return None;
    };
    if items.first()?.as_str()? != "event" || items.len() < 2 {
        return None;
    }
    Some(items.swap_remove(1).get_mut("data")?.take())
}

/// The cumulative ack the Nexus client sends, in Socket.IO form (the
/// baseline only counts it), so both servers read the same client traffic.
pub fn ack_frame(seq: u64) -> String {
    format!(r#"42{NSP},["ack",{{"seq":{seq}}}]"#)
}

/// The namespace connect that carries the agent's token.
pub fn connect_frame(token: &str) -> String {
    format!(r#"40{NSP},{{"token":"{token}"}}"#)
}

/// The Engine.IO answer to a ping.
pub const PONG: &str = "3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_transcript() {
        assert_eq!(
            parse(r#"0{"sid":"x","pingInterval":800}"#).unwrap(),
            Packet::Open(r#"{"sid":"x","pingInterval":800}"#)
        );
        assert_eq!(parse("2").unwrap(), Packet::Ping);
        assert_eq!(parse("3").unwrap(), Packet::Pong);
        assert_eq!(
            parse(r#"40/agents,{"sid":"m"}"#).unwrap(),
            Packet::Connect {
                nsp: "/agents",
                payload: r#"{"sid":"m"}"#
            }
        );
        assert_eq!(
            parse(r#"44/agents,{"message":"unauthorized"}"#).unwrap(),
            Packet::ConnectError {
                nsp: "/agents",
                payload: r#"{"message":"unauthorized"}"#
            }
        );
        assert_eq!(
            parse("41/agents,").unwrap(),
            Packet::Disconnect { nsp: "/agents" }
        );
        assert_eq!(
            parse(r#"44{"message":"use the /agents namespace"}"#).unwrap(),
            Packet::ConnectError {
                nsp: "/",
                payload: r#"{"message":"use the /agents namespace"}"#
            }
        );
        assert_eq!(
            parse(r#"42/agents,7["ack",{}]"#).unwrap(),
            Packet::Event {
                nsp: "/agents",
                payload: r#"["ack",{}]"#
            }
        );
        assert!(parse("").is_err());
        assert!(parse("4").is_err());
        assert_eq!(parse("9x").unwrap(), Packet::Other("9x"));
    }

    #[test]
    fn reads_event_data() {
        let payload = r#"["event",{"type":"wake_up","id":"u","ts":"t","data":{"t_ns":5,"i":2}}]"#;
        assert_eq!(
            event_data(payload),
            Some(serde_json::json!({"t_ns": 5, "i": 2}))
        );
        assert_eq!(event_data(r#"["welcome",{"session_id":"s"}]"#), None);
        assert_eq!(event_data("not json"), None);
        assert_eq!(ack_frame(3), r#"42/agents,["ack",{"seq":3}]"#);
        assert_eq!(connect_frame("t"), r#"40/agents,{"token":"t"}"#);
    }
}
