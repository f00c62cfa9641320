//! Agent → server messages and the parser the gateway runs on every inbound
//! text frame.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::Seq;
use crate::server::ErrorCode;

/// Every message an agent may send. Any frame may also carry a top-level
/// string `id`, which is not part of the message: see [`ClientFrame`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Renews presence. Exactly `{"type":"heartbeat"}`.
    Heartbeat,
    AgentReady {
        data: AgentReady,
    },
    StatusUpdate {
        data: StatusUpdate,
    },
    ToolRequest {
        data: ToolRequest,
    },
    Ack {
        data: Ack,
    },
    Resume {
        data: Resume,
    },
    Refresh {
        data: Refresh,
    },
}

impl ClientMsg {
    /// Every `type` value. A test checks it against the generated schema.
    pub const TYPES: &'static [&'static str] = &[
        "heartbeat",
        "agent_ready",
        "status_update",
        "tool_request",
        "ack",
        "resume",
        "refresh",
    ];

    /// The wire `type`, for logs and metric labels.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Heartbeat => "heartbeat",
            ClientMsg::AgentReady { .. } => "agent_ready",
            ClientMsg::StatusUpdate { .. } => "status_update",
            ClientMsg::ToolRequest { .. } => "tool_request",
            ClientMsg::Ack { .. } => "ack",
            ClientMsg::Resume { .. } => "resume",
            ClientMsg::Refresh { .. } => "refresh",
        }
    }
}

/// Announces what the agent can do; sent once after `welcome`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentReady {
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Free-form status shown to operators (e.g. `"working"`, `"idle"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusUpdate {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Asks the server to run a tool; the answer arrives as a `tool_result`
/// event with the same `request_id`, which is also the idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolRequest {
    pub request_id: String,
    /// e.g. `slack.post_message`, `clickup.create_comment`, `task.reply`.
    pub tool: String,
    #[serde(default = "empty_object")]
    pub args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Cumulative: acknowledges every event with a seq up to and including `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ack {
    pub seq: Seq,
}

/// Restarts replay from the inbox: every event with a seq after `after_seq`
/// is sent again, in order, then live events continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resume {
    pub after_seq: Seq,
}

/// A fresh access token for the live session (answer to `token_expiring`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Refresh {
    pub token: String,
}

/// Keeps tokens out of logs that `{:?}` a message.
impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A parsed inbound frame: the message plus the client's optional `id`, kept
/// apart so the message types stay free of per-frame bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFrame {
    pub id: Option<String>,
    pub msg: ClientMsg,
}

/// Why an inbound frame was refused; becomes an `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    pub code: ErrorCode,
    /// Bounded to [`MAX_MESSAGE_LEN`] bytes.
    pub message: String,
    /// The frame's `id`, when it was readable and at most [`MAX_REF_LEN`] bytes.
    pub reference: Option<String>,
}

impl FrameError {
    fn new(code: ErrorCode, message: &str, reference: Option<String>) -> Self {
        Self {
            code,
            message: truncate(message, MAX_MESSAGE_LEN).to_owned(),
            reference,
        }
    }
}

/// Longest `status` in `status_update` (chars): presence keeps it per session.
pub const MAX_STATUS_LEN: usize = 64;
/// Longest `detail` in `status_update` (chars).
pub const MAX_DETAIL_LEN: usize = 1_024;
/// Most `capabilities` in `agent_ready`, and the longest one (chars).
pub const MAX_CAPABILITIES: usize = 64;
pub const MAX_CAPABILITY_LEN: usize = 64;
/// A tool request's id is its idempotency key, stored with its job.
pub const MAX_REQUEST_ID_LEN: usize = 128;
pub const MAX_TOOL_NAME_LEN: usize = 64;

impl ClientMsg {
    /// What is over a bound, for the `error` frame; `None` when all is within.
    fn out_of_bounds(&self) -> Option<String> {
        let over = |s: &str, max: usize| s.chars().count() > max;
        match self {
            ClientMsg::StatusUpdate { data }
                if data.status.is_empty() || over(&data.status, MAX_STATUS_LEN) =>
            {
                Some(format!("status must be 1–{MAX_STATUS_LEN} characters"))
            }
            ClientMsg::StatusUpdate { data }
                if data
                    .detail
                    .as_deref()
                    .is_some_and(|d| over(d, MAX_DETAIL_LEN)) =>
            {
                Some(format!(
                    "detail must be at most {MAX_DETAIL_LEN} characters"
                ))
            }
            ClientMsg::ToolRequest { data }
                if data.request_id.is_empty() || data.request_id.len() > MAX_REQUEST_ID_LEN =>
            {
                Some(format!("request_id must be 1–{MAX_REQUEST_ID_LEN} bytes"))
            }
            ClientMsg::ToolRequest { data } if data.tool.len() > MAX_TOOL_NAME_LEN => {
                Some(format!("tool must be at most {MAX_TOOL_NAME_LEN} bytes"))
            }
            ClientMsg::AgentReady { data }
                if data.capabilities.len() > MAX_CAPABILITIES
                    || data
                        .capabilities
                        .iter()
                        .any(|c| over(c, MAX_CAPABILITY_LEN)) =>
            {
                Some(format!(
                    "at most {MAX_CAPABILITIES} capabilities of at most {MAX_CAPABILITY_LEN} characters"
                ))
            }
            _ => None,
        }
    }
}

/// Error messages quote parts of the input (serde names offending strings);
/// the cap keeps an abusive frame from being echoed back at full size.
pub const MAX_MESSAGE_LEN: usize = 200;

/// A longer `id` is not echoed as `ref` at all: a truncated one would
/// correlate with the wrong request.
pub const MAX_REF_LEN: usize = 256;

/// Parses one inbound text frame. Never panics: every input yields a frame
/// or a [`FrameError`] (serde_json's recursion limit bounds nesting).
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::InvalidJson, &e.to_string(), None))?;
    let Value::Object(mut object) = value else {
        return Err(FrameError::new(
            ErrorCode::InvalidJson,
            "frame must be a JSON object",
            None,
        ));
    };
    // Removing `id` keeps it out of the message; unknown fields are ignored
    // anyway, so this only saves the deserializer a step.
    let id = match object.remove("id") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let reference = id.clone().filter(|id| id.len() <= MAX_REF_LEN);
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err(FrameError::new(
                ErrorCode::InvalidJson,
                "`type` must be a string",
                reference,
            ));
        }
        None => {
            return Err(FrameError::new(
                ErrorCode::InvalidJson,
                "missing `type`",
                reference,
            ));
        }
    };
    if !ClientMsg::TYPES.contains(&kind.as_str()) {
        let message = format!("unknown type `{}`", truncate(kind, 64));
        return Err(FrameError::new(ErrorCode::UnknownType, &message, reference));
    }
    match serde_json::from_value::<ClientMsg>(Value::Object(object)) {
        Ok(msg) => match msg.out_of_bounds() {
            Some(message) => Err(FrameError::new(
                ErrorCode::InvalidFields,
                &message,
                reference,
            )),
            None => Ok(ClientFrame { id, msg }),
        },
        Err(e) => Err(FrameError::new(
            ErrorCode::InvalidFields,
            &e.to_string(),
            reference,
        )),
    }
}

/// The longest prefix of `s` within `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(text: &str) -> ErrorCode {
        parse_client_frame(text).unwrap_err().code
    }

    #[test]
    fn presence_fields_are_bounded() {
        let status = |s: &str| json!({"type": "status_update", "data": {"status": s}}).to_string();
        assert!(parse_client_frame(&status(&"é".repeat(MAX_STATUS_LEN))).is_ok());
        assert_eq!(
            code(&status(&"é".repeat(MAX_STATUS_LEN + 1))),
            ErrorCode::InvalidFields
        );
        assert_eq!(code(&status("")), ErrorCode::InvalidFields);
        let detail = json!({"type": "status_update", "data": {"status": "busy", "detail": "d".repeat(MAX_DETAIL_LEN + 1)}});
        assert_eq!(code(&detail.to_string()), ErrorCode::InvalidFields);
        let caps = |n: usize, len: usize| {
            json!({"type": "agent_ready", "data": {"capabilities": vec!["c".repeat(len); n]}})
                .to_string()
        };
        assert!(parse_client_frame(&caps(MAX_CAPABILITIES, MAX_CAPABILITY_LEN)).is_ok());
        assert_eq!(
            code(&caps(MAX_CAPABILITIES + 1, 1)),
            ErrorCode::InvalidFields
        );
        assert_eq!(
            code(&caps(1, MAX_CAPABILITY_LEN + 1)),
            ErrorCode::InvalidFields
        );
    }

    #[test]
    fn tool_request_ids_and_names_are_bounded() {
        let req = |id: &str, tool: &str| {
            json!({"type": "tool_request", "data": {"request_id": id, "tool": tool}}).to_string()
        };
        let id = "r".repeat(MAX_REQUEST_ID_LEN);
        let tool = "t".repeat(MAX_TOOL_NAME_LEN);
        assert!(parse_client_frame(&req(&id, &tool)).is_ok());
        for bad in [
            req(&format!("{id}r"), "slack.post_message"),
            req("", "slack.post_message"),
            req("r1", &format!("{tool}t")),
        ] {
            assert_eq!(code(&bad), ErrorCode::InvalidFields, "{bad}");
        }
    }

    #[test]
    fn heartbeat_is_exactly_its_type() {
        assert_eq!(
            serde_json::to_string(&ClientMsg::Heartbeat).unwrap(),
            r#"{"type":"heartbeat"}"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let frame =
            parse_client_frame(r#"{"type":"heartbeat","id":"h1","ts":"2026-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(frame.msg, ClientMsg::Heartbeat);
        assert_eq!(frame.id.as_deref(), Some("h1"));

        let frame =
            parse_client_frame(r#"{"type":"ack","data":{"seq":5,"extra":[1]},"more":{}}"#).unwrap();
        assert_eq!(
            frame.msg,
            ClientMsg::Ack {
                data: Ack { seq: Seq::new(5) }
            }
        );
        assert_eq!(frame.id, None);
    }

    #[test]
    fn tool_request_args_default_to_empty_object() {
        let frame = parse_client_frame(
            r#"{"type":"tool_request","data":{"request_id":"r","tool":"slack.post_message"}}"#,
        )
        .unwrap();
        let ClientMsg::ToolRequest { data } = frame.msg else {
            panic!("not a tool_request");
        };
        assert_eq!(data.args, json!({}));
        assert_eq!(data.timeout_ms, None);
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(code(""), ErrorCode::InvalidJson);
        assert_eq!(code("{"), ErrorCode::InvalidJson);
        assert_eq!(code("[]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"data":{}}"#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":5}"#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"welcome"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"ack"}"#), ErrorCode::InvalidFields);
        assert_eq!(
            code(r#"{"type":"ack","data":{"seq":-1}}"#),
            ErrorCode::InvalidFields
        );
        assert_eq!(
            code(r#"{"type":"ack","data":{"seq":"1"}}"#),
            ErrorCode::InvalidFields
        );
    }

    #[test]
    fn errors_echo_the_frame_id() {
        let err = parse_client_frame(r#"{"type":"ack","id":"a-1","data":{}}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidFields);
        assert_eq!(err.reference.as_deref(), Some("a-1"));
        assert!(err.message.contains("seq"), "{}", err.message);

        let err = parse_client_frame(r#"{"type":"nope","id":"x"}"#).unwrap_err();
        assert_eq!(err.reference.as_deref(), Some("x"));
        assert_eq!(err.message, "unknown type `nope`");
    }

    #[test]
    fn echoed_input_is_bounded() {
        let long = "é".repeat(10_000);
        let err = parse_client_frame(&format!(r#"{{"type":"{long}","id":"{long}"}}"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownType);
        assert!(err.message.len() <= MAX_MESSAGE_LEN);
        assert_eq!(err.reference, None);

        let err = parse_client_frame(&format!(r#"{{"type":"ack","data":{{"seq":"{long}"}}}}"#))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidFields);
        assert!(err.message.len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn nasty_inputs_never_panic() {
        let deep_array = "[".repeat(100_000);
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
        let deep_data = format!(
            r#"{{"type":"tool_request","data":{{"request_id":"r","tool":"t","args":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let inputs = [
            "",
            " ",
            "null",
            "true",
            "0",
            "\"heartbeat\"",
            "[]",
            "{}",
            "{\"type\":5}",
            "{\"type\":null}",
            "{\"type\":\"\"}",
            "{\"type\":\"heartbeat\"",
            "{\"type\":\"heartbeat\",\"id\":5}",
            "{\"type\":\"heartbeat\",\"type\":\"ack\"}",
            "{\"type\":\"ack\",\"data\":{\"seq\":18446744073709551616}}",
            "{\"type\":\"ack\",\"data\":{\"seq\":1e400}}",
            "{\"type\":\"ack\",\"data\":{\"seq\":-9223372036854775809}}",
            "{\"type\":\"ack\",\"data\":{\"seq\":1.5}}",
            "{\"type\":\"ack\",\"data\":null}",
            "{\"type\":\"ack\",\"data\":[]}",
            "{\"type\":\"resume\",\"data\":{\"after_seq\":18446744073709551615}}",
            "{\"type\":\"refresh\",\"data\":{\"token\":\"\\ud800\"}}",
            "{\"type\":\"status_update\",\"data\":{\"status\":\"\\u0000\"}}",
            "\u{feff}{\"type\":\"heartbeat\"}",
            "{\"type\":\"heartbeat\"} trailing",
            &deep_array,
            &deep_object,
            &deep_data,
        ];
        for input in inputs {
            let result = std::panic::catch_unwind(|| parse_client_frame(input));
            assert!(result.is_ok(), "panicked on {:?}", truncate(input, 80));
        }
        assert_eq!(
            code("{\"type\":\"ack\",\"data\":{\"seq\":18446744073709551616}}"),
            ErrorCode::InvalidFields
        );
        let max = parse_client_frame("{\"type\":\"ack\",\"data\":{\"seq\":18446744073709551615}}");
        assert!(max.is_ok());
    }

    #[test]
    fn refresh_token_is_not_debug_printed() {
        let msg = ClientMsg::Refresh {
            data: Refresh {
                token: "secret".into(),
            },
        };
        assert!(!format!("{msg:?}").contains("secret"));
    }
}
