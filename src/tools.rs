//! Tool requests from agents. Each runs as a queue job (kind `tool.call`, deduplicated
//! by agent + request id, so retries and repeats never act twice) and is answered with
//! a `tool_result` through the agent's inbox (so the answer survives a reconnect).
//!
//! Whichever comes first answers: the tool's outcome or the request's deadline. Both
//! write the result under one idempotency key, so the agent sees exactly one. The
//! deadline's wait belongs to the agent's session and ends with it; at most
//! `--tool-max-in-flight` of an agent's requests wait on one node at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use nexus_proto::{AgentId, TenantId, ToolError, ToolRequest, ToolResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

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
    /// The tenant's `allow_broadcasts` when the request was taken.
    #[serde(default)]
    allow_broadcasts: bool,
}

/// Takes agents' tool requests: queues them and answers their deadlines.
pub struct Tools {
    queue: Arc<Queue>,
    ctx: Arc<Context>,
    in_flight: Arc<InFlight>,
}

impl Tools {
    pub fn new(queue: Arc<Queue>, ctx: Arc<Context>, max_in_flight: usize) -> Tools {
        Tools {
            queue,
            ctx,
            in_flight: Arc::new(InFlight::new(max_in_flight)),
        }
    }

    /// Checks the request, queues it and arms its deadline. Refusals answer at once.
    /// The wait for the answer belongs to `session` and ends with it; the job does not
    /// (its `tool_result` waits in the inbox for the agent's next session).
    pub fn dispatch(
        self: &Arc<Self>,
        agent: AgentId,
        tenant: TenantId,
        req: ToolRequest,
        session: &CancellationToken,
    ) {
        // `request_id` is 1–128 bytes: `parse_client_frame` refuses anything else.
        // Counted here, in frame order, so the request over the limit is the one refused.
        let wait = match self.in_flight.admit(agent, &req.request_id, session) {
            Admission::Admitted(wait) => wait,
            // A repeat of a request still waiting: the first one's result answers it.
            Admission::Waiting => return,
            Admission::Full(max) => {
                let e = ToolError::new(
                    "too_many_requests",
                    format!(
                        "{max} tool requests are already waiting for an answer; retry after one is answered"
                    ),
                );
                return self.refuse(tenant, agent, req.request_id, e);
            }
        };
        let tools = self.clone();
        tokio::spawn(async move { tools.request(agent, tenant, req, wait).await });
    }

    /// A `tool_result` is on its way to the agent: its request no longer waits.
    pub fn answered(&self, agent: AgentId, data: &str) {
        #[derive(Deserialize)]
        struct Answer {
            request_id: String,
        }
        if let Ok(a) = serde_json::from_str::<Answer>(data) {
            self.in_flight.answered(agent, &a.request_id);
        }
    }

    fn refuse(&self, tenant: TenantId, agent: AgentId, request_id: String, e: ToolError) {
        let hub = self.ctx.hub.clone();
        tokio::spawn(async move { tell(&hub, tenant, agent, &request_id, Err(e), false).await });
    }

    async fn request(&self, agent: AgentId, tenant: TenantId, req: ToolRequest, wait: Wait) {
        let hub = &self.ctx.hub;
        let id = &req.request_id;
        let (call, allow_broadcasts) = match self.check(agent, tenant, &req.tool, req.args).await {
            Ok(checked) => checked,
            Err(e) => return tell(hub, tenant, agent, id, Err(e), false).await,
        };
        let timeout = req
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            .min(MAX_TIMEOUT);
        let payload = Payload {
            agent,
            request_id: id.clone(),
            call,
            deadline_ms: now_ms() + timeout.as_millis() as i64,
            allow_broadcasts,
        };
        let job = NewJob {
            tenant_id: tenant,
            source_id: None,
            source: "tool".into(),
            kind: JobKind::ToolCall.as_str().into(),
            dedupe_key: format!("{agent}:{id}"),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            trace_id: None,
            max_attempts: self.queue.max_attempts(JobKind::ToolCall.as_str()),
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
                return tell(hub, tenant, agent, id, Err(e), false).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                let e = ToolError::new(
                    "timeout",
                    format!("the tool did not finish within {} ms", timeout.as_millis()),
                );
                tell(hub, tenant, agent, id, Err(e), true).await;
            }
            // Answered, or the session ended: the job answers through the inbox.
            () = wait.done.cancelled() => {}
        }
    }

    /// The call, if the agent may make it, and whether it may broadcast.
    async fn check(
        &self,
        agent: AgentId,
        tenant: TenantId,
        tool: &str,
        args: Value,
    ) -> Result<(ToolCall, bool), ToolError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(agent_id = %agent, error = %e, "could not read the {what} for a tool request");
            ToolError::new(
                "unavailable",
                "the request could not be checked; retry later",
            )
        };
        // A disabled agent's session may outlive the change by the cache TTL or until the
        // next reconcile; its tool calls stop at once with the cache.
        let a = self
            .ctx
            .agent(agent)
            .await
            .map_err(|e| unavailable("agent", &e))?;
        if a.status != AgentStatus::Active {
            return Err(ToolError::new("agent_disabled", "this agent is disabled"));
        }
        let call = ToolCall::parse(tool, args)?;
        let policy = self
            .ctx
            .tool_policy(tenant)
            .await
            .map_err(|e| unavailable("tenant", &e))?;
        match call.check_target(&self.ctx, tenant, &policy).await {
            Ok(()) => Ok((call, policy.allow_broadcasts)),
            Err(ToolFailure::Fail(e)) => Err(e),
            Err(ToolFailure::Retry(e)) => Err(unavailable("task", &e)),
        }
    }
}

/// The agent's `tool_result`. Once a request is queued (`queued`), its first answer
/// is the only one; a refusal before that carries no key, so a retry with the same
/// request id (after `too_many_requests`, say) is answered again.
async fn answer(
    hub: &Hub,
    tenant: TenantId,
    agent: AgentId,
    request_id: &str,
    outcome: Result<Value, ToolError>,
    queued: bool,
) -> Result<(), String> {
    let result = match outcome {
        Ok(value) => ToolResult::success(request_id, value),
        Err(e) => ToolResult::failure(request_id, e),
    };
    let event =
        NewEvent::encode(&result).map_err(|e| format!("could not encode a tool_result: {e}"))?;
    let event = if queued {
        event.key(format!("tool:{request_id}"))
    } else {
        event
    };
    hub.emit_to_agent(tenant, agent, event)
        .await
        .map(drop)
        .map_err(|e| format!("could not deliver the tool_result: {e}"))
}

/// [`answer`] where nothing would retry it: a failure is only logged.
async fn tell(
    hub: &Hub,
    tenant: TenantId,
    agent: AgentId,
    request_id: &str,
    outcome: Result<Value, ToolError>,
    queued: bool,
) {
    if let Err(e) = answer(hub, tenant, agent, request_id, outcome, queued).await {
        tracing::warn!(agent_id = %agent, error = %e, "tool_result lost");
    }
}

/// Runs a `tool.call` job. Its answer is part of the job: one that cannot be stored
/// fails the attempt, and the retry answers with what the first attempt wrote.
pub async fn run(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let p: Payload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a tool call: {e}")))?;
    let left = p.deadline_ms - now_ms();
    let (outcome, done) = if left <= 0 {
        let e = ToolError::new(
            "timeout",
            "the request's deadline passed before it could run",
        );
        (Err(e), Some("timeout"))
    } else {
        let step = Step {
            tenant: job.tenant_id,
            holder: job.holder(),
            allow_broadcasts: p.allow_broadcasts,
        };
        let ran =
            tokio::time::timeout(Duration::from_millis(left as u64), p.call.run(ctx, &step)).await;
        match ran {
            Ok(Ok(value)) => (Ok(value), None),
            Ok(Err(ToolFailure::Fail(e))) => (Err(e), Some("tool_error")),
            Ok(Err(ToolFailure::Retry(e @ JobError::Transient { .. })))
                if job.attempts >= job.max_attempts =>
            {
                let told = ToolError::new(
                    "provider_unavailable",
                    format!("gave up after {} attempts: {e}", job.attempts),
                );
                answer(
                    &ctx.hub,
                    job.tenant_id,
                    p.agent,
                    &p.request_id,
                    Err(told),
                    true,
                )
                .await
                .map_err(JobError::transient)?;
                return Err(e);
            }
            Ok(Err(ToolFailure::Retry(e))) => return Err(e),
            Err(_) => {
                let e = ToolError::new(
                    "timeout",
                    "the tool did not finish before the request's deadline",
                );
                (Err(e), Some("timeout"))
            }
        }
    };
    answer(
        &ctx.hub,
        job.tenant_id,
        p.agent,
        &p.request_id,
        outcome,
        true,
    )
    .await
    .map_err(JobError::transient)?;
    Ok(Done { reason: done })
}

/// This node's unanswered tool requests, per agent: what `--tool-max-in-flight` bounds.
/// Each has a token that ends its wait, cancelled when its answer reaches the agent's
/// session or (a child of the session's) when that session ends.
struct InFlight {
    max: usize,
    by_agent: DashMap<AgentId, HashMap<String, Waiting>>,
    next_ticket: AtomicU64,
}

struct Waiting {
    ticket: u64,
    done: CancellationToken,
}

enum Admission {
    Admitted(Wait),
    /// A request with this id is already waiting.
    Waiting,
    /// The agent has this many requests waiting.
    Full(usize),
}

/// One admitted request; dropping it (when its wait ends, however) frees its place.
struct Wait {
    in_flight: Arc<InFlight>,
    agent: AgentId,
    request_id: String,
    ticket: u64,
    done: CancellationToken,
}

impl InFlight {
    fn new(max: usize) -> InFlight {
        InFlight {
            max,
            by_agent: DashMap::new(),
            next_ticket: AtomicU64::new(0),
        }
    }

    fn admit(
        self: &Arc<Self>,
        agent: AgentId,
        request_id: &str,
        session: &CancellationToken,
    ) -> Admission {
        let mut waiting = self.by_agent.entry(agent).or_default();
        // Requests of ended sessions stop counting at once, before their waits wake up.
        waiting.retain(|_, w| !w.done.is_cancelled());
        if waiting.contains_key(request_id) {
            return Admission::Waiting;
        }
        if waiting.len() >= self.max {
            return Admission::Full(self.max);
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let done = session.child_token();
        let w = Waiting {
            ticket,
            done: done.clone(),
        };
        waiting.insert(request_id.to_owned(), w);
        Admission::Admitted(Wait {
            in_flight: self.clone(),
            agent,
            request_id: request_id.to_owned(),
            ticket,
            done,
        })
    }

    fn answered(&self, agent: AgentId, request_id: &str) {
        self.remove(agent, request_id, |_| true);
    }

    fn remove(&self, agent: AgentId, request_id: &str, which: impl Fn(&Waiting) -> bool) {
        if let Some(mut waiting) = self.by_agent.get_mut(&agent)
            && waiting.get(request_id).is_some_and(which)
            && let Some(w) = waiting.remove(request_id)
        {
            w.done.cancel();
        }
        // After the guard above is gone: `remove_if` locks the same shard.
        self.by_agent
            .remove_if(&agent, |_, waiting| waiting.is_empty());
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // Only its own entry: the id may have been answered and sent again since.
        let ticket = self.ticket;
        self.in_flight
            .remove(self.agent, &self.request_id, |w| w.ticket == ticket);
    }
}
