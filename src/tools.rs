//! Tool requests from agents. Each runs as a queue job (kind `tool.call`, deduplicated
//! by agent + request id, so retries and repeats never act twice) and is answered with
//! a `tool_result` through the agent's inbox (so the answer survives a reconnect).
//!
//! Whichever comes first answers: the tool's outcome or the request's deadline. Both
//! write the result under one idempotency key, so the agent sees exactly one.

use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, TenantId, ToolError, ToolRequest, ToolResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::{Hub, NewEvent};
use crate::context::Context;
use crate::mirror::tools::{Step, ToolCall, ToolFailure};
use crate::queue::{Done, JobError, JobKind, Queue};
use crate::store::{AgentStatus, Enqueued, Job, NewJob};
use crate::time::now_ms;

/// Longest `timeout_ms` an agent may ask for, and the default when it asks none.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `tool.call` job carries (`tool` and `args` as the agent sent them).
#[derive(Serialize, Deserialize)]
struct Payload {
    agent: AgentId,
    request_id: String,
    #[serde(flatten)]
    call: ToolCall,
    deadline_ms: i64,
}

/// Takes agents' tool requests: queues them and answers their deadlines.
pub struct Tools {
    queue: Arc<Queue>,
    ctx: Arc<Context>,
}

impl Tools {
    pub fn new(queue: Arc<Queue>, ctx: Arc<Context>) -> Tools {
        Tools { queue, ctx }
    }

    /// Checks the request, queues it and arms its deadline. Refusals answer at once.
    pub fn dispatch(self: &Arc<Self>, agent: AgentId, tenant: TenantId, req: ToolRequest) {
        let tools = self.clone();
        tokio::spawn(async move { tools.request(agent, tenant, req).await });
    }

    async fn request(&self, agent: AgentId, tenant: TenantId, req: ToolRequest) {
        let hub = &self.ctx.hub;
        if req.request_id.is_empty() || req.request_id.len() > 128 {
            let e = ToolError::new("invalid_request", "request_id must be 1–128 characters");
            return answer(hub, agent, &req.request_id, Err(e)).await;
        }
        // A disabled agent's session may outlive the change by the cache TTL or until the
        // next reconcile; its tool calls stop at once with the cache.
        match self.ctx.agent(agent).await {
            Ok(a) if a.status == AgentStatus::Active => {}
            Ok(_) => {
                let e = ToolError::new("agent_disabled", "this agent is disabled");
                return answer(hub, agent, &req.request_id, Err(e)).await;
            }
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = %e, "could not read the agent for a tool request");
                let e = ToolError::new(
                    "unavailable",
                    "the request could not be checked; retry later",
                );
                return answer(hub, agent, &req.request_id, Err(e)).await;
            }
        }
        let call = match ToolCall::parse(&req.tool, req.args) {
            Ok(call) => call,
            Err(e) => return answer(hub, agent, &req.request_id, Err(e)).await,
        };
        let timeout = req
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            .min(MAX_TIMEOUT);
        let payload = Payload {
            agent,
            request_id: req.request_id.clone(),
            call,
            deadline_ms: now_ms() + timeout.as_millis() as i64,
        };
        let job = NewJob {
            tenant_id: tenant,
            source_id: None,
            source: "tool".into(),
            kind: JobKind::ToolCall.as_str().into(),
            dedupe_key: format!("{agent}:{}", req.request_id),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            trace_id: None,
            max_attempts: self.queue.max_attempts(),
            run_at: 0,
        };
        match self.queue.enqueue(job).await {
            Ok(Enqueued::Created(_)) => {}
            // A repeated request: the first one's result answers it.
            Ok(Enqueued::Duplicate(_)) => return,
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = %e, "could not queue a tool request");
                let e = ToolError::new(
                    "unavailable",
                    "the request could not be stored; retry later",
                );
                return answer(hub, agent, &req.request_id, Err(e)).await;
            }
        }
        tokio::time::sleep(timeout).await;
        let e = ToolError::new(
            "timeout",
            format!("the tool did not finish within {} ms", timeout.as_millis()),
        );
        answer(hub, agent, &req.request_id, Err(e)).await;
    }
}

/// The agent's `tool_result`; the first answer for a request id is the only one.
async fn answer(hub: &Hub, agent: AgentId, request_id: &str, outcome: Result<Value, ToolError>) {
    let result = match outcome {
        Ok(value) => ToolResult::success(request_id, value),
        Err(e) => ToolResult::failure(request_id, e),
    };
    let event = match NewEvent::encode(&result) {
        Ok(event) => event.key(format!("tool:{request_id}")),
        Err(e) => {
            tracing::error!(agent_id = %agent, error = %e, "could not encode a tool_result");
            return;
        }
    };
    if let Err(e) = hub.emit_to_agent(agent, event).await {
        tracing::warn!(agent_id = %agent, error = %e, "could not deliver tool_result");
    }
}

/// Runs a `tool.call` job.
pub async fn run(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let p: Payload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a tool call: {e}")))?;
    let hub = &ctx.hub;
    let left = p.deadline_ms - now_ms();
    if left <= 0 {
        let e = ToolError::new(
            "timeout",
            "the request's deadline passed before it could run",
        );
        answer(hub, p.agent, &p.request_id, Err(e)).await;
        return Done::because("timeout");
    }
    let step = Step {
        tenant: job.tenant_id,
        job_id: job.id,
    };
    let outcome =
        tokio::time::timeout(Duration::from_millis(left as u64), p.call.run(ctx, &step)).await;
    match outcome {
        Ok(Ok(value)) => {
            answer(hub, p.agent, &p.request_id, Ok(value)).await;
            Ok(Done::default())
        }
        Ok(Err(ToolFailure::Fail(e))) => {
            answer(hub, p.agent, &p.request_id, Err(e)).await;
            Done::because("tool_error")
        }
        Ok(Err(ToolFailure::Retry(e))) => {
            if job.attempts >= job.max_attempts {
                let e = ToolError::new(
                    "provider_unavailable",
                    format!("gave up after {} attempts: {e}", job.attempts),
                );
                answer(hub, p.agent, &p.request_id, Err(e)).await;
            }
            Err(e)
        }
        Err(_) => {
            let e = ToolError::new(
                "timeout",
                "the tool did not finish before the request's deadline",
            );
            answer(hub, p.agent, &p.request_id, Err(e)).await;
            Done::because("timeout")
        }
    }
}
