//! Tool requests from agents. Each runs as a queue job (kind `tool.call`, deduplicated
//! by agent + request id, so retries and repeats never act twice) and is answered with
//! a `tool_result` through the agent's inbox (so the answer survives a reconnect).
//!
//! Whichever comes first answers: the tool's outcome or the request's deadline. Both
//! write the result under one idempotency key, so the agent sees exactly one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nexus_proto::{AgentId, EventType, TenantId, ToolError, ToolRequest, ToolResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::bus::NewEvent;
use crate::providers::ProviderError;
use crate::queue::{Done, JobError, Processor};
use crate::state::AppState;
use crate::store::{Enqueued, Job, NewJob, StoreError};
use crate::time::now_ms;

pub const KIND: &str = "tool.call";

/// Longest `timeout_ms` an agent may ask for, and the default when it asks none.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One request, as a tool sees it.
pub struct ToolCall {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub request_id: String,
    pub args: Value,
    /// Names the request's steps (`tool:{job}:slack`) so a retry skips finished ones.
    pub job_id: Uuid,
}

/// Why a tool did not answer: try again later, or answer the agent with this error.
#[derive(Debug)]
pub enum ToolFailure {
    Retry(JobError),
    Fail(ToolError),
}

impl ToolFailure {
    pub fn fail(code: &str, message: impl Into<String>) -> ToolFailure {
        ToolFailure::Fail(error(code, message))
    }
}

impl From<ProviderError> for ToolFailure {
    fn from(e: ProviderError) -> ToolFailure {
        match e {
            ProviderError::Permanent { .. } => ToolFailure::fail("provider_error", e.to_string()),
            transient => ToolFailure::Retry(transient.into()),
        }
    }
}

impl From<StoreError> for ToolFailure {
    fn from(e: StoreError) -> ToolFailure {
        ToolFailure::Retry(e.into())
    }
}

pub trait Tool: Send + Sync + 'static {
    fn call(
        &self,
        state: AppState,
        call: ToolCall,
    ) -> BoxFuture<'static, Result<Value, ToolFailure>>;
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

/// What a `tool.call` job carries.
#[derive(Serialize, Deserialize)]
struct Payload {
    agent: AgentId,
    request_id: String,
    tool: String,
    args: Value,
    deadline_ms: i64,
}

/// Checks the request, queues it and arms its deadline. Refusals answer at once.
pub fn dispatch(state: &AppState, agent: AgentId, tenant: TenantId, req: ToolRequest) {
    let state = state.clone();
    tokio::spawn(async move {
        if req.request_id.is_empty() || req.request_id.len() > 128 {
            let e = error("invalid_request", "request_id must be 1–128 characters");
            return answer(&state, agent, &req.request_id, Err(e)).await;
        }
        if state.tools.get(&req.tool).is_none() {
            let e = error(
                "unknown_tool",
                format!("no tool named {:?}", truncate(&req.tool, 64)),
            );
            return answer(&state, agent, &req.request_id, Err(e)).await;
        }
        let timeout = req
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            .min(MAX_TIMEOUT);
        let payload = Payload {
            agent,
            request_id: req.request_id.clone(),
            tool: req.tool,
            args: req.args,
            deadline_ms: now_ms() + timeout.as_millis() as i64,
        };
        let job = NewJob {
            tenant_id: tenant,
            source_id: None,
            source: "tool".into(),
            kind: KIND.into(),
            dedupe_key: format!("{agent}:{}", req.request_id),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            trace_id: None,
            max_attempts: state.queue.max_attempts(),
            run_at: 0,
        };
        match state.queue.enqueue(job).await {
            Ok(Enqueued::Created(_)) => {}
            // A repeated request: the first one's result answers it.
            Ok(Enqueued::Duplicate(_)) => return,
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = %e, "could not queue a tool request");
                let e = error(
                    "unavailable",
                    "the request could not be stored; retry later",
                );
                return answer(&state, agent, &req.request_id, Err(e)).await;
            }
        }
        tokio::time::sleep(timeout).await;
        let e = error(
            "timeout",
            format!("the tool did not finish within {} ms", timeout.as_millis()),
        );
        answer(&state, agent, &req.request_id, Err(e)).await;
    });
}

/// The agent's `tool_result`; the first answer for a request id is the only one.
async fn answer(
    state: &AppState,
    agent: AgentId,
    request_id: &str,
    outcome: Result<Value, ToolError>,
) {
    let result = match outcome {
        Ok(value) => ToolResult::success(request_id, value),
        Err(e) => ToolResult::failure(request_id, e),
    };
    let event = NewEvent {
        kind: EventType::ToolResult,
        data: serde_json::to_value(&result).unwrap_or(Value::Null),
        trace_id: None,
        idempotency_key: Some(format!("tool:{request_id}")),
    };
    if let Err(e) = state.hub.emit_to_agent(agent, event).await {
        tracing::warn!(agent_id = %agent, error = %e, "could not deliver tool_result");
    }
}

/// Runs `tool.call` jobs.
pub struct Runner;

impl Processor for Runner {
    fn process(&self, state: AppState, job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        run(state, job).boxed()
    }
}

async fn run(state: AppState, job: Job) -> Result<Done, JobError> {
    let p: Payload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a tool call: {e}")))?;
    let left = p.deadline_ms - now_ms();
    if left <= 0 {
        let e = error(
            "timeout",
            "the request's deadline passed before it could run",
        );
        answer(&state, p.agent, &p.request_id, Err(e)).await;
        return Done::because("timeout");
    }
    let Some(tool) = state.tools.get(&p.tool) else {
        let e = error(
            "unknown_tool",
            format!("no tool named {:?}", truncate(&p.tool, 64)),
        );
        answer(&state, p.agent, &p.request_id, Err(e)).await;
        return Done::because("unknown_tool");
    };
    let call = ToolCall {
        tenant: job.tenant_id,
        agent: p.agent,
        request_id: p.request_id.clone(),
        args: p.args,
        job_id: job.id,
    };
    let outcome = tokio::time::timeout(
        Duration::from_millis(left as u64),
        tool.call(state.clone(), call),
    )
    .await;
    match outcome {
        Ok(Ok(value)) => {
            answer(&state, p.agent, &p.request_id, Ok(value)).await;
            Ok(Done::default())
        }
        Ok(Err(ToolFailure::Fail(e))) => {
            answer(&state, p.agent, &p.request_id, Err(e)).await;
            Done::because("tool_error")
        }
        Ok(Err(ToolFailure::Retry(e))) => {
            if job.attempts >= job.max_attempts {
                let e = error(
                    "provider_unavailable",
                    format!("gave up after {} attempts: {e}", job.attempts),
                );
                answer(&state, p.agent, &p.request_id, Err(e)).await;
            }
            Err(e)
        }
        Err(_) => {
            let e = error(
                "timeout",
                "the tool did not finish before the request's deadline",
            );
            answer(&state, p.agent, &p.request_id, Err(e)).await;
            Done::because("timeout")
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
