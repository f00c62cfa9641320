//! The MCP tools `nexus mcp` offers: the agent's own (events, acks, status, who is
//! online) and the node's tools an agent may call, each with the JSON Schema of its
//! arguments. A node tool `a.b_c` is offered as `a_b_c` (MCP tool names avoid dots).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::{Value, json};

use super::session::Session;
use crate::worker::client::Node;

/// The node's tools, by their protocol names.
const NODE_TOOLS: [(&str, &str); 4] = [
    (
        "slack.post_message",
        "Post a message in a Slack channel (or a thread: thread_ts).",
    ),
    (
        "task.reply",
        "Reply on a ClickUp task: one post in its Slack thread and one ClickUp comment.",
    ),
    ("clickup.create_comment", "Comment on a ClickUp task."),
    ("clickup.update_status", "Set a ClickUp task's status."),
];

/// Longest a node tool is waited for.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn schema(properties: Value, required: &[&str]) -> Arc<JsonObject> {
    let value = json!({"type": "object", "properties": properties, "required": required,
                       "additionalProperties": false});
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

fn node_tool_schema(name: &str) -> Arc<JsonObject> {
    let task_id = json!({"type": "string", "description": "The ClickUp task id"});
    let text = json!({"type": "string", "minLength": 1, "maxLength": 40000});
    match name {
        "slack.post_message" => schema(
            json!({"channel": {"type": "string", "description": "Slack channel id (C…)"},
                   "text": text, "thread_ts": {"type": "string", "description": "Reply in this thread"}}),
            &["channel", "text"],
        ),
        "clickup.update_status" => schema(
            json!({"task_id": task_id, "status": {"type": "string", "minLength": 1}}),
            &["task_id", "status"],
        ),
        _ => schema(
            json!({"task_id": task_id, "text": text}),
            &["task_id", "text"],
        ),
    }
}

/// Every tool, as `tools/list` answers.
pub fn all() -> Vec<Tool> {
    let mut tools = vec![
        Tool::new(
            "nexus_next_events",
            "Wait up to wait_s seconds for the agent's next events (task_assigned, context_update, \
             wake_up, tool_result, gap) and return them in order. Calling it again acks the events \
             it returned before (or call nexus_ack first).",
            schema(
                json!({"wait_s": {"type": "integer", "minimum": 0, "maximum": 60, "default": 20},
                       "max": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
                &[],
            ),
        ),
        Tool::new(
            "nexus_ack",
            "Ack the events returned so far (or up to seq): the node will not send them again.",
            schema(json!({"seq": {"type": "integer", "minimum": 1}}), &[]),
        ),
        Tool::new(
            "nexus_set_status",
            "Set the agent's status, shown to operators (e.g. working, idle).",
            schema(
                json!({"status": {"type": "string", "minLength": 1, "maxLength": 64},
                       "detail": {"type": "string", "maxLength": 256}}),
                &["status"],
            ),
        ),
        Tool::new(
            "nexus_online_agents",
            "The agents of this tenant online now, with their status and capabilities.",
            schema(json!({}), &[]),
        ),
    ];
    tools.extend(NODE_TOOLS.iter().map(|(name, description)| {
        Tool::new(mcp_name(name), *description, node_tool_schema(name))
    }));
    tools
}

fn mcp_name(node_name: &str) -> String {
    node_name.replace('.', "_")
}

fn text(value: &Value) -> Vec<ContentBlock> {
    vec![ContentBlock::text(value.to_string())]
}

fn failed(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// Runs tool `name`; a failure is a tool error the assistant reads, not a protocol error.
pub async fn call(session: &Session, node: &Node, name: &str, args: JsonObject) -> CallToolResult {
    if let Some(why) = session.closed() {
        return failed(why);
    }
    let int = |key: &str| args.get(key).and_then(Value::as_u64);
    match name {
        "nexus_next_events" => {
            let wait = Duration::from_secs(int("wait_s").unwrap_or(20).min(60));
            let max = int("max").unwrap_or(20).clamp(1, 100) as usize;
            let events = session.next_events(wait, max).await;
            CallToolResult::success(text(&json!({ "events": events })))
        }
        "nexus_ack" => match session.ack(int("seq")).await {
            Some(seq) => CallToolResult::success(text(&json!({ "acked_seq": seq }))),
            None => CallToolResult::success(text(&json!({ "acked_seq": null }))),
        },
        "nexus_set_status" => {
            let field = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
            let Some(status) = field("status") else {
                return failed("status is required");
            };
            match session.set_status(status, field("detail")).await {
                true => CallToolResult::success(text(&json!({ "ok": true }))),
                false => failed("the agent session has ended"),
            }
        }
        "nexus_online_agents" => {
            match node
                .call_json::<Value>(Method::GET, "/api/agents/me/online", |r| r)
                .await
            {
                Ok(agents) => CallToolResult::success(text(&agents)),
                Err(e) => failed(e.to_string()),
            }
        }
        other => node_tool(session, other, args).await,
    }
}

async fn node_tool(session: &Session, name: &str, args: JsonObject) -> CallToolResult {
    let Some((node_name, _)) = NODE_TOOLS.iter().find(|(n, _)| mcp_name(n) == name) else {
        return failed(format!("no tool {name:?}"));
    };
    match session
        .tool(node_name, Value::Object(args), TOOL_TIMEOUT)
        .await
    {
        Some(result) if result["ok"] == true => CallToolResult::success(text(&result["result"])),
        Some(result) => failed(result["error"].to_string()),
        None => failed(format!("{node_name} got no answer within {TOOL_TIMEOUT:?}")),
    }
}
