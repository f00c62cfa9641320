//! Agent → server messages, and the parser that classifies bad frames.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::Seq;
use crate::server::ErrorCode;

/// Every message an agent sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Renews presence. Exactly `{"type":"heartbeat"}`.
    Heartbeat,
    /// The agent is ready for work and says what it can do.
    AgentReady { data: AgentReady },
    /// A free-form status shown to operators (`idle`, `busy`, …).
    StatusUpdate { data: StatusUpdate },
    /// Ask the hub to run a tool; the answer comes back as `tool_result`.
    ToolRequest { data: ToolRequest },
    /// Cumulative: every event up to and including `seq` is handled.
    Ack { data: Ack },
    /// Replay again from `after_seq` (for an agent that detected a gap).
    Resume { data: Resume },
    /// A new access token for this session, before the old one expires.
    Refresh { data: Refresh },
}

impl ClientMsg {
    /// Every `type` value, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "heartbeat",
        "agent_ready",
        "status_update",
        "tool_request",
        "ack",
        "resume",
        "refresh",
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentReady {
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusUpdate {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolRequest {
    /// Chosen by the agent; echoed in the `tool_result`. A repeat never runs twice.
    pub request_id: String,
    pub tool: String,
    #[serde(default = "empty_object")]
    pub args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ack {
    pub seq: Seq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resume {
    pub after_seq: Seq,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Refresh {
    pub token: String,
}

/// A parsed frame: the message and the frame's optional `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFrame {
    /// Echoed as `ref` in an `error` about this frame.
    pub id: Option<String>,
    pub msg: ClientMsg,
}

/// Why a frame was refused; becomes an `error` event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
}

/// Longest piece of agent input echoed back in an error message.
const ECHO_MAX: usize = 64;
/// Longest frame `id` echoed back as `ref`.
const REF_MAX: usize = 128;

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<Value>,
    id: Option<Value>,
}

/// Parses one text frame. Never panics; every refusal says which kind it is.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let head: Head = serde_json::from_str(text).map_err(|e| FrameError {
        code: ErrorCode::InvalidJson,
        message: format!("not a JSON object: {}", clip(&e.to_string(), 160)),
        reference: None,
    })?;
    let reference = match head.id {
        Some(Value::String(s)) => Some(clip(&s, REF_MAX).to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let kind = match head.kind {
        Some(Value::String(s)) => s,
        _ => {
            return Err(FrameError {
                code: ErrorCode::InvalidJson,
                message: "a frame needs a string \"type\"".into(),
                reference,
            });
        }
    };
    if !ClientMsg::TYPES.contains(&kind.as_str()) {
        return Err(FrameError {
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {:?}", clip(&kind, ECHO_MAX)),
            reference,
        });
    }
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(ClientFrame { id: reference, msg }),
        Err(e) => Err(FrameError {
            code: ErrorCode::InvalidFields,
            message: format!("bad {kind} frame: {}", clip(&e.to_string(), 160)),
            reference,
        }),
    }
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_are_ignored() {
        let f = parse_client_frame(r#"{"type":"heartbeat","id":"h1","ts":"2026-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(f.msg, ClientMsg::Heartbeat);
        assert_eq!(f.id.as_deref(), Some("h1"));
        let f = parse_client_frame(r#"{"type":"ack","data":{"seq":3,"note":"x"}}"#).unwrap();
        assert_eq!(
            f.msg,
            ClientMsg::Ack {
                data: Ack { seq: Seq::new(3) }
            }
        );
    }

    #[test]
    fn refusals_are_classified() {
        let code = |t: &str| parse_client_frame(t).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":5}"#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"ack","data":{"seq":-1}}"#),
            ErrorCode::InvalidFields
        );
        assert_eq!(code(r#"{"type":"ack"}"#), ErrorCode::InvalidFields);
        let e = parse_client_frame(r#"{"type":"nope","id":"f9"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("f9"));
    }

    #[test]
    fn nasty_inputs_never_panic() {
        let deep = "[".repeat(10_000);
        let long_type = format!(r#"{{"type":"{}"}}"#, "x".repeat(100_000));
        let inputs = [
            "",
            "null",
            "{}",
            "\"type\"",
            r#"{"type":null}"#,
            r#"{"type":"ack","data":{"seq":1e400}}"#,
            r#"{"type":"ack","data":{"seq":18446744073709551616}}"#,
            r#"{"type":"resume","data":{"after_seq":"1"}}"#,
            r#"{"type":"tool_request","data":{"request_id":1,"tool":"x"}}"#,
            "\u{0}\u{1}",
            deep.as_str(),
            long_type.as_str(),
        ];
        for input in inputs {
            let r = parse_client_frame(input);
            if let Err(e) = r {
                assert!(e.message.len() < 400, "error messages stay bounded");
            }
        }
    }
}
