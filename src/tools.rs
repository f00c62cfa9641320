//! Tool requests from agents: validated, run by a registered tool, and answered with a
//! `tool_result` through the agent's inbox (so the answer survives a reconnect).
//!
//! The registry starts empty; provider tools (Slack, ClickUp) register themselves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use nexus_proto::{AgentId, EventType, ToolError, ToolRequest, ToolResult};
use serde_json::Value;

use crate::bus::NewEvent;
use crate::state::AppState;

/// Longest `timeout_ms` an agent may ask for, and the default when it asks none.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub trait Tool: Send + Sync + 'static {
    fn call(
        &self,
        state: AppState,
        agent: AgentId,
        args: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>>;
}

#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: HashMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn register(&mut self, name: &str, tool: Arc<dyn Tool>) {
        self.tools.insert(name.to_owned(), tool);
    }

    fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }
}

fn error(code: &str, message: impl Into<String>) -> ToolError {
    ToolError {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Runs the request in the background; its result reaches the agent as `tool_result`.
pub fn dispatch(state: &AppState, agent: AgentId, req: ToolRequest) {
    let state = state.clone();
    tokio::spawn(async move {
        let request_id = req.request_id.clone();
        let outcome = run(&state, agent, req).await;
        let result = match outcome {
            Ok(value) => ToolResult {
                request_id: request_id.clone(),
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(e) => ToolResult {
                request_id: request_id.clone(),
                ok: false,
                result: None,
                error: Some(e),
            },
        };
        let event = NewEvent {
            kind: EventType::ToolResult,
            data: serde_json::to_value(&result).unwrap_or(Value::Null),
            trace_id: None,
            // A retried request never yields two results.
            idempotency_key: Some(format!("tool:{request_id}")),
        };
        if let Err(e) = state.hub.emit_to_agent(agent, event).await {
            tracing::warn!(agent_id = %agent, error = %e, "could not deliver tool_result");
        }
    });
}

async fn run(state: &AppState, agent: AgentId, req: ToolRequest) -> Result<Value, ToolError> {
    if req.request_id.is_empty() || req.request_id.len() > 128 {
        return Err(error(
            "invalid_request",
            "request_id must be 1–128 characters",
        ));
    }
    let Some(tool) = state.tools.get(&req.tool) else {
        return Err(error(
            "unknown_tool",
            format!("no tool named {:?}", truncate(&req.tool, 64)),
        ));
    };
    let timeout = req
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
        .min(MAX_TIMEOUT);
    match tokio::time::timeout(timeout, tool.call(state.clone(), agent, req.args)).await {
        Ok(result) => result,
        Err(_) => Err(error(
            "timeout",
            format!("the tool did not finish within {} ms", timeout.as_millis()),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
