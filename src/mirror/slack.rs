//! `slack.event` jobs: a reply in a task's thread → `context_update` to the task's
//! agents; a message naming an alias or an agent's Slack user → `wake_up`.

use nexus_proto::{AgentId, ContextUpdate, SlackChannelId, WakeUp};
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

/// Runs a `slack.event` job.
pub async fn process(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let envelope: SlackEnvelope = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a Slack event: {e}")))?;
    let Some(event) = envelope.event else {
        return Err(JobError::permanent(
            "unparseable",
            "not a Slack event: no `event`",
        ));
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
    let channel = channel_id(&channel)?;
    if source.bot_user.as_deref() == Some(user.as_str()) {
        return Done::because("ignored");
    }
    let trace = job.trace_id.as_deref();
    // `message` and `app_mention` for one message share these keys: one event per agent.
    let key = format!("slack:{channel}:{ts}");
    let mut reached = 0;

    let thread_ts = event.thread_ts.filter(|t| *t != ts);
    if let Some(thread) = &thread_ts
        && let Some(task) = ctx.store.task_by_thread(tenant, &channel, thread).await?
    {
        let agents = ctx.store.task_agents(task.id).await?;
        let update = ContextUpdate {
            task_id: Some(task.clickup_task_id.to_string()),
            source: "slack".into(),
            text: event.text.clone(),
            author: Some(user.to_string()),
            channel: Some(channel.to_string()),
            ts: Some(ts.to_string()),
            ..ContextUpdate::default()
        };
        emit(ctx, &agents, &update, &key, trace).await?;
        reached += agents.len();
    }

    let woken = Mentions::parse(&event.text)
        .agents(&ctx.store, tenant)
        .await?;
    for (agent, reason) in &woken {
        let wake = WakeUp {
            text: event.text.clone(),
            channel: channel.to_string(),
            ts: ts.to_string(),
            thread_ts: thread_ts.as_ref().map(ToString::to_string),
            author: Some(user.to_string()),
            reason: Some(reason.clone()),
        };
        let agents: [AgentId; 1] = [*agent];
        emit(ctx, &agents, &wake, &format!("wake:{channel}:{ts}"), trace).await?;
    }
    reached += woken.len();
    if reached == 0 {
        return Done::because("no_recipients");
    }
    Ok(Done::default())
}
