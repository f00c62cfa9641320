//! Typed `data` of the known inbox events.
//!
//! The server builds `data` from these; clients read it with
//! `serde_json::from_value::<TaskAssigned>(frame.data)`. Optional fields
//! default, so a newer server may omit or add fields without breaking them.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::EventType;

/// Ties a payload type to the event type that carries it, so the server
/// cannot store a `WakeUp` under `task_assigned`.
pub trait EventData: Serialize + DeserializeOwned {
    const KIND: EventType;
}

/// A task was created for, or assigned to, this agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAssigned {
    pub task: TaskRef,
    pub mapping: MappingRef,
    /// What happened, e.g. `created`, `assigned`.
    pub change: String,
}

/// A ClickUp task as the agent needs to see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRef {
    pub id: String,
    pub name: String,
    pub status: String,
    pub url: String,
    pub list_id: String,
}

/// Where the task is mirrored in Slack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MappingRef {
    pub slack_channel: String,
    /// The task's thread, once one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_thread_ts: Option<String>,
}

/// Something changed around a task the agent works on (status, comment,
/// thread reply). Deliberately loose: sources differ in what they know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// e.g. `clickup`, `slack`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The source's own timestamp (a Slack `ts`), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// What changed (ClickUp): `status`, `comment`, `assigned`, `updated`, `deleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The task as it is now, when the source could say (ClickUp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    /// The put.io transfer that finished (`source` is `putio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PutioTransfer>,
}

/// A put.io transfer as its completion callback describes it. Only `id` is sure to be
/// there; the rest is what put.io sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PutioTransfer {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// put.io's status, e.g. `COMPLETED`, `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The file (or folder) the transfer made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<u64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The folder the file was saved in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_parent_id: Option<u64>,
    /// What was fetched: the magnet link or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Someone addressed the agent (by name or alias) outside a task thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WakeUp {
    pub text: String,
    pub channel: String,
    /// The Slack message `ts`, needed to reply in its thread.
    pub ts: String,
    /// The thread the message was posted in, when it was a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Why this agent was woken, e.g. `mention`, `alias:AI_Squad`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of a `tool_request`: `result` when `ok`, else `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolResult {
    pub request_id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolError>,
}

impl ToolResult {
    pub fn success(request_id: impl Into<String>, result: Value) -> Self {
        Self {
            request_id: request_id.into(),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn failure(request_id: impl Into<String>, error: ToolError) -> Self {
        Self {
            request_id: request_id.into(),
            ok: false,
            result: None,
            error: Some(error),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolError {
    /// Stable, machine-readable, e.g. `unknown_tool`, `timeout`, `provider_error`.
    pub code: String,
    pub message: String,
}

impl ToolError {
    pub fn new(code: &str, message: impl Into<String>) -> ToolError {
        ToolError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl EventData for TaskAssigned {
    const KIND: EventType = EventType::TaskAssigned;
}
impl EventData for ContextUpdate {
    const KIND: EventType = EventType::ContextUpdate;
}
impl EventData for WakeUp {
    const KIND: EventType = EventType::WakeUp;
}
impl EventData for ToolResult {
    const KIND: EventType = EventType::ToolResult;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_update_tolerates_missing_fields() {
        let update: ContextUpdate = serde_json::from_value(json!({"text": "hi"})).unwrap();
        assert_eq!(update.text, "hi");
        assert_eq!(update.source, "");
        assert_eq!(update.task_id, None);
    }

    #[test]
    fn a_putio_transfer_reads_as_the_readme_shows_it() {
        let data = json!({"source": "putio", "text": "put.io transfer 42 a: COMPLETED",
                          "transfer": {"id": 42, "name": "a", "size": 6114656256_u64}});
        let update: ContextUpdate = serde_json::from_value(data.clone()).unwrap();
        let transfer = update.transfer.clone().unwrap();
        assert_eq!((transfer.id, transfer.size), (42, Some(6_114_656_256)));
        assert_eq!(transfer.status, None);
        assert_eq!(serde_json::to_value(&update).unwrap(), data);
    }

    #[test]
    fn tool_result_shapes() {
        let ok = ToolResult::success("r1", json!({"ts": "1.2"}));
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"request_id": "r1", "ok": true, "result": {"ts": "1.2"}})
        );
        let err = ToolResult::failure(
            "r2",
            ToolError {
                code: "timeout".into(),
                message: "slow".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"request_id": "r2", "ok": false, "error": {"code": "timeout", "message": "slow"}})
        );
    }
}
