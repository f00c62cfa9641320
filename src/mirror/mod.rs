//! The mirror (DESIGN §12): ClickUp and Slack webhook jobs become agent events, and
//! agents' tool requests become Slack posts and ClickUp comments.

mod broadcast;
pub mod clickup;
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

/// Sends `data` to each agent once: `key` makes a retried job (or the second of two
/// webhooks about one thing) find the earlier event instead of adding another.
async fn emit<T: EventData>(
    ctx: &Context,
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
        .emit_to_agents(agents, event)
        .await
        .map_err(|e| JobError::transient(e.to_string()))
}

/// A Slack post recorded under `op_key` by an earlier attempt (one that died before it
/// could record what the post was for), so a retry finds it instead of posting again.
async fn posted_before(ctx: &Context, op_key: &str) -> Result<Option<Posted>, StoreError> {
    Ok(ctx
        .store
        .write_result(op_key)
        .await?
        .and_then(|done| serde_json::from_str(&done).ok()))
}

/// Posts, then records the post under `op_key` (which also marks its webhook echo as
/// Nexus's own). With [`posted_before`], this is how a message is posted once. The
/// outer error is storage's, the inner Slack's: callers treat them differently.
async fn post_recorded(
    ctx: &Context,
    tenant: TenantId,
    op_key: &str,
    post: SlackPost<'_>,
) -> Result<Result<Posted, ProviderError>, StoreError> {
    let posted = match ctx
        .providers
        .slack
        .post_message(post.token, post.channel, post.text, post.thread_ts)
        .await
    {
        Ok(posted) => posted,
        Err(e) => return Ok(Err(e)),
    };
    let result = serde_json::to_string(&posted).unwrap_or_default();
    let key = format!("{}:{}", posted.channel, posted.ts);
    ctx.store
        .record_write(tenant, Provider::Slack, &key, Some(op_key), &result)
        .await?;
    Ok(Ok(posted))
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
