//! Typed `data` of the known event types. The server builds them; clients read
//! them from an event's `data` with `serde_json::from_value`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `task_assigned`: a task now concerns this agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskAssigned {
    pub task: TaskRef,
    pub mapping: MappingRef,
    /// What made it concern the agent (`created`, `assigned`, …).
    pub change: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRef {
    pub id: String,
    pub name: String,
    pub status: String,
    pub url: String,
    pub list_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MappingRef {
    pub slack_channel: String,
    #[serde(default)]
    pub slack_thread_ts: Option<String>,
}

/// `context_update`: something changed about work the agent has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextUpdate {
    #[serde(default)]
    pub task_id: Option<String>,
    /// `clickup`, `slack`, or another source.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
}

/// `wake_up`: someone asked for the agent (a mention, an alias, a rule).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WakeUp {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    /// Why this agent: `mention`, `alias`, `rule`, …
    #[serde(default)]
    pub reason: Option<String>,
}

/// `tool_result`: the answer to a `tool_request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolResult {
    pub request_id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolError {
    pub code: String,
    pub message: String,
}
