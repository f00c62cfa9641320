//! Server → agent messages.
//!
//! Two shapes share one `type` tag: inbox events carry `id`, `seq`, `ts` and
//! an optional `trace_id` beside `data` (they are durable and acked), while
//! control frames carry only `data` (they belong to one session and are never
//! replayed).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, EventId, Seq, SessionId, TenantId};

/// Every message the server sends to an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First frame of every session.
    Welcome { data: Welcome },
    /// A task was created for, or assigned to, the agent (`data`: `TaskAssigned`).
    TaskAssigned(EventFrame),
    /// News about a task the agent works on (`data`: `ContextUpdate`).
    ContextUpdate(EventFrame),
    /// Someone addressed the agent in Slack (`data`: `WakeUp`).
    WakeUp(EventFrame),
    /// The answer to a `tool_request` (`data`: `ToolResult`).
    ToolResult(EventFrame),
    /// A frame from the agent was refused; the socket stays open.
    Error { data: ErrorData },
    /// Events were lost to retention before the agent could receive them.
    Gap { data: Gap },
    /// The session's token expires soon; answer with `refresh`.
    TokenExpiring { data: TokenExpiring },
}

impl ServerMsg {
    /// Every `type` value, in declaration order. A test checks it against the
    /// generated schema, so it cannot drift from the enum.
    pub const TYPES: &'static [&'static str] = &[
        "welcome",
        "task_assigned",
        "context_update",
        "wake_up",
        "tool_result",
        "error",
        "gap",
        "token_expiring",
    ];

    /// Wraps a frame as the variant for `kind`, so callers holding a stored
    /// event type need not match on it.
    pub fn event(kind: EventType, frame: EventFrame) -> ServerMsg {
        match kind {
            EventType::TaskAssigned => ServerMsg::TaskAssigned(frame),
            EventType::ContextUpdate => ServerMsg::ContextUpdate(frame),
            EventType::WakeUp => ServerMsg::WakeUp(frame),
            EventType::ToolResult => ServerMsg::ToolResult(frame),
        }
    }

    /// The event behind an inbox message; `None` for control frames.
    pub fn as_event(&self) -> Option<(EventType, &EventFrame)> {
        match self {
            ServerMsg::TaskAssigned(f) => Some((EventType::TaskAssigned, f)),
            ServerMsg::ContextUpdate(f) => Some((EventType::ContextUpdate, f)),
            ServerMsg::WakeUp(f) => Some((EventType::WakeUp, f)),
            ServerMsg::ToolResult(f) => Some((EventType::ToolResult, f)),
            ServerMsg::Welcome { .. }
            | ServerMsg::Error { .. }
            | ServerMsg::Gap { .. }
            | ServerMsg::TokenExpiring { .. } => None,
        }
    }

    /// The wire `type`, for logs and metric labels.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMsg::Welcome { .. } => "welcome",
            ServerMsg::Error { .. } => "error",
            ServerMsg::Gap { .. } => "gap",
            ServerMsg::TokenExpiring { .. } => "token_expiring",
            ServerMsg::TaskAssigned(_) => EventType::TaskAssigned.as_str(),
            ServerMsg::ContextUpdate(_) => EventType::ContextUpdate.as_str(),
            ServerMsg::WakeUp(_) => EventType::WakeUp.as_str(),
            ServerMsg::ToolResult(_) => EventType::ToolResult.as_str(),
        }
    }
}

/// The kinds of inbox events: what the inbox stores in its `type` column.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    TaskAssigned,
    ContextUpdate,
    WakeUp,
    ToolResult,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::TaskAssigned,
        EventType::ContextUpdate,
        EventType::WakeUp,
        EventType::ToolResult,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::TaskAssigned => "task_assigned",
            EventType::ContextUpdate => "context_update",
            EventType::WakeUp => "wake_up",
            EventType::ToolResult => "tool_result",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`EventType`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type")]
pub struct UnknownEventType;

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(UnknownEventType)
    }
}

/// The envelope of every inbox event. `data` stays an untyped JSON value so a
/// client built against an older protocol still reads newer events; the
/// typed payloads in [`crate::payload`] read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventFrame {
    /// Same on every redelivery of this event.
    pub id: EventId,
    /// The agent's inbox position; acks and de-duplication use it.
    pub seq: Seq,
    /// When the event was appended to the inbox.
    #[serde(with = "crate::time::millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub ts: DateTime<Utc>,
    /// Follows the originating webhook through the server's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub data: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Welcome {
    pub session_id: SessionId,
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    /// The negotiated protocol, e.g. `nexus.v1`.
    pub protocol: String,
    /// Send a `heartbeat` at least this often to stay present.
    pub heartbeat_interval_s: u64,
    /// Replay in this session starts after this seq unless the agent chose
    /// another point at connect.
    pub last_acked_seq: Seq,
}

/// Why a frame from the agent was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorData {
    pub code: ErrorCode,
    /// Human-readable; not a stable contract, and bounded in length.
    pub message: String,
    /// The `id` of the refused frame when it had one. Omitted (not `null`)
    /// when absent; readers should accept both.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Machine-readable reason in an `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or no string `type`.
    InvalidJson,
    /// `type` names no agent → server message.
    UnknownType,
    /// A known `type` with missing or ill-typed fields.
    InvalidFields,
    /// The connection sends faster than its inbound limit; the frame was dropped.
    RateLimited,
    /// A `refresh` token was invalid or belongs to another agent.
    InvalidToken,
    /// The server failed; the frame may be retried.
    Internal,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidFields => "invalid_fields",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Events with `after_seq < seq < first_available_seq` were removed by
/// retention (TTL or per-agent cap) before this agent received them; they
/// cannot be replayed. Delivery continues at `first_available_seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Gap {
    pub after_seq: Seq,
    pub first_available_seq: Seq,
}

/// Sent shortly before the session's token expires, so a healthy agent can
/// `refresh` instead of being closed with 4001.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenExpiring {
    #[serde(with = "crate::time::millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub expires_at: DateTime<Utc>,
    pub expires_in_s: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_strings_match_serde() {
        for kind in EventType::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, Value::from(kind.as_str()));
            assert_eq!(kind.as_str().parse::<EventType>().unwrap(), kind);
        }
        assert!("welcome".parse::<EventType>().is_err());
    }

    #[test]
    fn error_code_strings_match_serde() {
        use ErrorCode::*;
        for code in [
            InvalidJson,
            UnknownType,
            InvalidFields,
            RateLimited,
            InvalidToken,
            Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::from(code.as_str())
            );
        }
    }

    #[test]
    fn event_and_as_event_are_inverse() {
        let frame = EventFrame {
            id: EventId::new_v7(),
            seq: Seq::new(7),
            ts: Utc::now(),
            trace_id: None,
            data: serde_json::json!({}),
        };
        for kind in EventType::ALL {
            let msg = ServerMsg::event(kind, frame.clone());
            assert_eq!(msg.as_event(), Some((kind, &frame)));
            assert_eq!(msg.type_name(), kind.as_str());
            assert_eq!(serde_json::to_value(&msg).unwrap()["type"], kind.as_str());
        }
    }
}
