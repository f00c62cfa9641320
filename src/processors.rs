//! The node's one job processor: each job kind to the code that does it.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nexus_proto::{ContextUpdate, PutioTransfer};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::alerts;
use crate::bus::NewEvent;
use crate::context::Context;
use crate::mirror::{self, KeyedLocks};
use crate::queue::{Done, JobError, JobKind, Processor};
use crate::store::{Job, SourceKind};
use crate::tools;

pub struct Processors {
    ctx: Arc<Context>,
    /// Serialises the ClickUp jobs about one task on this node.
    task_locks: Arc<KeyedLocks>,
    /// Processors for kinds Nexus does not make (an embedder's or a test's own).
    other: HashMap<String, Arc<dyn Processor>>,
}

impl Processors {
    pub fn new(ctx: Arc<Context>, other: HashMap<String, Arc<dyn Processor>>) -> Processors {
        Processors {
            ctx,
            task_locks: Arc::default(),
            other,
        }
    }
}

impl Processor for Processors {
    fn process(&self, job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        let Some(kind) = JobKind::parse(&job.kind) else {
            return match self.other.get(&job.kind) {
                Some(other) => other.process(job),
                None => Box::pin(std::future::ready(Done::because("no_processor"))),
            };
        };
        let (ctx, locks) = (self.ctx.clone(), self.task_locks.clone());
        async move {
            match kind {
                JobKind::ClickUpEvent => mirror::clickup::process(&ctx, &job, &locks).await,
                JobKind::SlackEvent => mirror::slack::process(&ctx, &job).await,
                JobKind::IngestDeliver => deliver(&ctx, &job).await,
                JobKind::ToolCall => tools::run(&ctx, &job).await,
                JobKind::AlertSend => alerts::send(&ctx, &job).await,
            }
        }
        .boxed()
    }
}

/// Delivers an ingest or put.io job's payload to the agents its source's rule names.
async fn deliver(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let source = mirror::job_source(ctx, job).await?;
    let rule = source
        .rule
        .as_ref()
        .ok_or_else(|| JobError::permanent("no_rule", "the source has no delivery rule"))?;
    let mut agents = Vec::new();
    if let Some(agent) = rule.to_agent {
        agents.push(agent);
    }
    if let Some(alias) = &rule.to_alias {
        agents.extend(ctx.store.alias_agent_ids(source.tenant_id, alias).await?);
    }
    agents.sort();
    agents.dedup();
    if agents.is_empty() {
        return Done::because("no_recipients");
    }
    let unparseable =
        |e: serde_json::Error| JobError::permanent("unparseable", format!("stored payload: {e}"));
    let event = match source.kind {
        SourceKind::Putio => {
            let transfer: PutioTransfer =
                serde_json::from_str(&job.payload).map_err(unparseable)?;
            NewEvent::encode(&transfer_complete(transfer))
        }
        _ => {
            let payload: &RawValue = serde_json::from_str(&job.payload).map_err(unparseable)?;
            serde_json::to_string(&Ingested {
                source: &source.external_id,
                payload,
            })
            .map(|data| NewEvent::json_text(rule.event, data))
        }
    }
    .map_err(|e| JobError::permanent("unserializable", e.to_string()))?;
    // A retried job finds its earlier deliveries instead of repeating them.
    let event = event
        .key(format!("job:{}", job.id))
        .trace(job.trace_id.as_deref());
    ctx.hub
        .emit_to_agents(job.tenant_id, &agents, event)
        .await
        .map_err(|e| JobError::transient(e.to_string()))?;
    Ok(Done::default())
}

/// An ingest event's `data`: the sender's payload inserted as it arrived.
#[derive(Serialize)]
struct Ingested<'a> {
    source: &'a str,
    payload: &'a RawValue,
}

/// A finished put.io transfer as the `context_update` the protocol README documents.
fn transfer_complete(transfer: PutioTransfer) -> ContextUpdate {
    let name = transfer.name.as_deref().unwrap_or("(unnamed)");
    let status = transfer.status.as_deref().unwrap_or("finished");
    ContextUpdate {
        source: "putio".into(),
        text: format!("put.io transfer {} {name}: {status}", transfer.id),
        transfer: Some(transfer),
        ..ContextUpdate::default()
    }
}
