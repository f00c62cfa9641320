//! The mirror (DESIGN §12): ClickUp and Slack webhook jobs become agent events, and
//! agents' tool requests become Slack posts and ClickUp comments.

mod broadcast;
pub mod clickup;
mod effects;
mod mentions;
pub mod slack;
pub mod tools;

use std::collections::HashMap;
use std::sync::Arc;

use nexus_proto::{AgentId, EventData, SlackChannelId, SlackTs, TenantId};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::bus::NewEvent;
use crate::context::Context;
use crate::providers::{Posted, ProviderError};
use crate::queue::JobError;
use crate::store::{Job, Provider, Secret, Source, SourceKind, StoreError};

use effects::Effect;

pub use mentions::Mentions;

/// The webhook source a job came in through.
pub async fn job_source(ctx: &Context, job: &Job) -> Result<Source, JobError> {
    let id = job
        .source_id
        .ok_or_else(|| JobError::permanent("unknown_source", "the job's source was removed"))?;
    Ok(ctx.source(id).await?)
}

/// The tenant's API token for `kind` (the first source of that kind holding one).
pub async fn api_token(
    ctx: &Context,
    tenant: TenantId,
    kind: SourceKind,
) -> Result<Option<Secret>, StoreError> {
    Ok(ctx
        .store
        .list_sources(Some(kind), Some(tenant))
        .await?
        .into_iter()
        .find_map(|s| s.api_token))
}

/// Posts a cost alert's `text` to `channel` with the tenant's Slack token, once per
/// job (a retried job finds its earlier post).
pub async fn post_alert(
    ctx: &Context,
    job: &Job,
    channel: &SlackChannelId,
    text: &str,
) -> Result<(), JobError> {
    let token = api_token(ctx, job.tenant_id, SourceKind::Slack)
        .await?
        .ok_or_else(|| {
            JobError::permanent(
                "no_api_token",
                "the tenant has no Slack source with an API token",
            )
        })?;
    let op_key = format!("alert:{}", job.dedupe_key);
    let effect = Effect {
        tenant: job.tenant_id,
        holder: job.holder(),
        op_key: &op_key,
    };
    let post = SlackPost {
        token: &token,
        channel,
        text,
        thread_ts: None,
    };
    post_once(ctx, effect, post)
        .await?
        .map(drop)
        .map_err(|e| JobError::transient(format!("slack: {e}")))
}

/// Sends `data` to each agent once: `key` makes a retried job (or the second of two
/// webhooks about one thing) find the earlier event instead of adding another.
async fn emit<T: EventData>(
    ctx: &Context,
    tenant: TenantId,
    agents: &[AgentId],
    data: &T,
    key: &str,
    trace_id: Option<&str>,
) -> Result<(), JobError> {
    let event = NewEvent::encode(data)
        .map_err(|e| JobError::permanent("unserializable", e.to_string()))?
        .key(key)
        .trace(trace_id);
    ctx.hub
        .emit_to_agents(tenant, agents, event)
        .await
        .map_err(|e| JobError::transient(e.to_string()))
}

/// Posts at most once per `effect` (see [`effects::once`]): a retry gets the message an
/// earlier attempt posted, from the store or, when that attempt died before recording
/// it, from Slack. The outer error is the job's, the inner Slack's.
async fn post_once(
    ctx: &Context,
    effect: Effect<'_>,
    post: SlackPost<'_>,
) -> Result<Result<Posted, ProviderError>, JobError> {
    let slack = &ctx.providers.slack;
    let op_key = effect.op_key;
    let (token, channel, thread) = (post.token, post.channel, post.thread_ts);
    effects::once(
        ctx,
        effect,
        // Slack's clock and the database's may disagree by minutes.
        |since| slack.find_post(token, channel, thread, since - 5 * 60_000, op_key),
        || slack.post_message(token, channel, post.text, thread, op_key),
        |p: &Posted| (Provider::Slack, format!("{}:{}", p.channel, p.ts)),
    )
    .await
}

struct SlackPost<'a> {
    token: &'a Secret,
    channel: &'a SlackChannelId,
    text: &'a str,
    thread_ts: Option<&'a SlackTs>,
}

/// One lock per key (a task), so two webhooks about one task are processed one after
/// the other on this node; entries are dropped when nobody holds or waits for them.
#[derive(Default)]
pub struct KeyedLocks {
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

struct KeyGuard {
    owner: Arc<KeyedLocks>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    async fn lock(self: Arc<Self>, key: String) -> KeyGuard {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        KeyGuard {
            owner: self,
            key,
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.owner.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map itself still holds it: nobody waits, so forget the key.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}
