//! `slack.event` jobs: a reply in a task's thread → `context_update` to the task's
//! agents; a message naming an alias or an agent's Slack user → `wake_up`.

use nexus_proto::{AgentId, ContextUpdate, SlackChannelId, SlackTs, SlackUserId, TenantId, WakeUp};
use serde_json::Value;

use super::{Mentions, emit, job_source};
use crate::context::Context;
use crate::providers::events::SlackEnvelope;
use crate::queue::{Done, JobError};
use crate::store::Job;

/// Message subtypes that are people talking; edits, deletes, joins and bot posts are not.
fn is_conversation(subtype: Option<&str>) -> bool {
    matches!(subtype, None | Some("thread_broadcast" | "file_share"))
}

/// The event's channel (the webhook parsed the rest of its ids).
fn channel_id(id: &str) -> Result<SlackChannelId, JobError> {
    id.parse()
        .map_err(|e| JobError::permanent("unparseable", format!("not a Slack event: {e}")))
}

/// A message someone wrote.
struct Message {
    user: SlackUserId,
    channel: SlackChannelId,
    ts: SlackTs,
    /// The thread it was posted in, when it is a reply.
    thread_ts: Option<SlackTs>,
    text: String,
}

/// Runs a `slack.event` job.
pub async fn process(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let envelope: SlackEnvelope = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a Slack event: {e}")))?;
    let Some(event) = envelope.event() else {
        return Done::because("ignored");
    };
    let source = job_source(ctx, job).await?;
    let tenant = source.tenant_id;
    match event.kind.as_str() {
        "channel_created" => {
            let channel = event.channel.unwrap_or_default();
            let (Some(id), Some(name)) = (channel["id"].as_str(), channel["name"].as_str()) else {
                return Err(JobError::permanent(
                    "unparseable",
                    "channel_created without id and name",
                ));
            };
            let id = channel_id(id)?;
            ctx.store.record_channel(tenant, &id, name).await?;
            return Done::because("channel_recorded");
        }
        "message" | "app_mention" => {}
        _ => return Done::because("ignored"),
    }
    if !is_conversation(event.subtype.as_deref()) || event.bot_id.is_some() {
        return Done::because("ignored");
    }
    let (Some(user), Some(Value::String(channel)), Some(ts)) =
        (event.user, event.channel, event.ts)
    else {
        return Done::because("ignored");
    };
    if source.bot_user.as_deref() == Some(user.as_str()) {
        return Done::because("ignored");
    }
    let msg = Message {
        user,
        channel: channel_id(&channel)?,
        thread_ts: event.thread_ts.filter(|t| *t != ts),
        ts,
        text: event.text,
    };
    let trace = job.trace_id.as_deref();
    let replied = thread_reply(ctx, tenant, &msg, trace).await?;
    let woken = wake(ctx, tenant, &msg, trace).await?;
    if replied + woken == 0 {
        return Done::because("no_recipients");
    }
    Ok(Done::default())
}

/// A reply in a task's thread goes to the task's agents; returns how many.
async fn thread_reply(
    ctx: &Context,
    tenant: TenantId,
    msg: &Message,
    trace: Option<&str>,
) -> Result<usize, JobError> {
    let Some(thread) = &msg.thread_ts else {
        return Ok(0);
    };
    let Some(task) = ctx
        .store
        .task_by_thread(tenant, &msg.channel, thread)
        .await?
    else {
        return Ok(0);
    };
    let agents = ctx.store.task_agents(task.id).await?;
    let update = ContextUpdate {
        task_id: Some(task.clickup_task_id.to_string()),
        source: "slack".into(),
        text: msg.text.clone(),
        author: Some(msg.user.to_string()),
        channel: Some(msg.channel.to_string()),
        ts: Some(msg.ts.to_string()),
        ..ContextUpdate::default()
    };
    // `message` and `app_mention` for one message share this key: one event per agent.
    let key = format!("slack:{}:{}", msg.channel, msg.ts);
    emit(ctx, tenant, &agents, &update, &key, trace).await?;
    Ok(agents.len())
}

/// Agents the message names (by alias or Slack user) are woken; returns how many.
async fn wake(
    ctx: &Context,
    tenant: TenantId,
    msg: &Message,
    trace: Option<&str>,
) -> Result<usize, JobError> {
    let woken = Mentions::parse(&msg.text)
        .agents(&ctx.store, tenant)
        .await?;
    let key = format!("wake:{}:{}", msg.channel, msg.ts);
    for (agent, reason) in &woken {
        let wake = WakeUp {
            text: msg.text.clone(),
            channel: msg.channel.to_string(),
            ts: msg.ts.to_string(),
            thread_ts: msg.thread_ts.as_ref().map(ToString::to_string),
            author: Some(msg.user.to_string()),
            reason: Some(reason.clone()),
        };
        let agents: [AgentId; 1] = [*agent];
        emit(ctx, tenant, &agents, &wake, &key, trace).await?;
    }
    Ok(woken.len())
}
