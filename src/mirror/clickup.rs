//! `clickup.event` jobs: a task in a mapped list reaches its agents as `task_assigned`
//! (once per task per agent); what happens to it later reaches them as `context_update`.

use std::sync::Arc;

use nexus_proto::{AgentId, ClickUpTaskId, ContextUpdate, MappingRef, TaskAssigned, TaskRef};

use super::{Effect, KeyedLocks, Mentions, SlackPost, api_token, emit, job_source, post_once};
use crate::context::Context;
use crate::providers::ClickUpTask;
use crate::providers::events::{ClickUpWebhook, HistoryItem};
use crate::queue::{Done, JobError};
use crate::store::{AgentStatus, Job, ProjectMapping, Provider, Source, SourceKind, TaskMapping};

/// The change an event stands for, as agents see it in `change`.
fn change_of(event: &str) -> &'static str {
    match event {
        "taskCreated" => "created",
        "taskStatusUpdated" => "status",
        "taskAssigneeUpdated" => "assigned",
        "taskCommentPosted" | "taskCommentUpdated" => "comment",
        "taskDeleted" => "deleted",
        _ => "updated",
    }
}

/// Runs a `clickup.event` job; `locks` serialises the jobs about one task on this node.
pub async fn process(ctx: &Context, job: &Job, locks: &Arc<KeyedLocks>) -> Result<Done, JobError> {
    let payload: ClickUpWebhook = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not a ClickUp payload: {e}")))?;
    let Some(task_id) = payload.task_id.clone() else {
        // List, folder and space events: nothing for agents.
        return Done::because("ignored");
    };
    if !payload.event.starts_with("task") {
        return Done::because("ignored");
    }
    let source = job_source(ctx, job).await?;
    if own_change(ctx, &source, &payload.history_items).await? {
        return Done::because("own_change");
    }
    let _serial = locks
        .clone()
        .lock(format!("{}:{task_id}", source.tenant_id))
        .await;
    if change_of(&payload.event) == "deleted" {
        return deleted(ctx, &source, &task_id, job).await;
    }
    let Some(seen) = read_task(ctx, job, &source, &task_id).await? else {
        return Done::because("unmapped");
    };
    task_changed(ctx, job, &source, &payload, &seen).await?;
    Ok(Done::default())
}

/// A task as ClickUp has it now, with its mapping and what Nexus knew of it before.
struct Seen {
    task: ClickUpTask,
    mapping: ProjectMapping,
    /// `None` the first time Nexus sees the task.
    before: Option<TaskMapping>,
    now: TaskMapping,
}

impl Seen {
    fn task_ref(&self) -> TaskRef {
        TaskRef {
            id: self.task.id.to_string(),
            name: self.task.name.clone(),
            status: self.task.status.clone(),
            url: self.task.url.clone(),
            list_id: self.task.list_id.to_string(),
        }
    }
}

/// Fetches the task and records it, opening its Slack thread when the mapping wants
/// one; `None` when its list is not mapped.
async fn read_task(
    ctx: &Context,
    job: &Job,
    source: &Source,
    task_id: &ClickUpTaskId,
) -> Result<Option<Seen>, JobError> {
    let token = source.api_token.clone().ok_or_else(|| {
        JobError::permanent(
            "no_api_token",
            "the ClickUp source has no API token to read tasks with (nexus source add --api-token)",
        )
    })?;
    let task = ctx.providers.clickup.get_task(&token, task_id).await?;
    let Some(mapping) = ctx
        .mapping_for_list(source.tenant_id, &task.list_id)
        .await?
    else {
        return Ok(None);
    };
    let (before, mut now) = ctx
        .store
        .upsert_task(&mapping, &task.id, &task.name, &task.status)
        .await?;
    if mapping.open_threads && now.slack_thread_ts.is_none() {
        open_thread(ctx, job, &mapping, &mut now, &task).await?;
    }
    Ok(Some(Seen {
        task,
        mapping,
        before,
        now,
    }))
}

/// The task reaches the agents it is for and has not reached yet (`task_assigned`);
/// the agents who had it already hear what changed (`context_update`).
async fn task_changed(
    ctx: &Context,
    job: &Job,
    source: &Source,
    payload: &ClickUpWebhook,
    seen: &Seen,
) -> Result<(), JobError> {
    let change = change_of(&payload.event);
    let comment = payload
        .history_items
        .iter()
        .find_map(|h| h.comment.as_ref())
        .and_then(|c| c.text_content.clone().or_else(|| c.comment_text.clone()))
        .unwrap_or_default();
    let wanted = recipients(ctx, source, &seen.mapping, &seen.task, &comment).await?;
    let known = ctx.store.task_agents(seen.now.id).await?;
    let new: Vec<AgentId> = wanted.into_iter().filter(|a| !known.contains(a)).collect();
    if !new.is_empty() {
        assign(ctx, job, seen, change, &new).await?;
    }
    let Some(text) = news(change, &payload.event, seen, new.len(), comment) else {
        return Ok(());
    };
    if known.is_empty() {
        return Ok(());
    }
    let author = payload
        .history_items
        .iter()
        .find_map(|h| h.user.as_ref())
        .map(|u| u.username.clone().unwrap_or_else(|| u.id.to_string()));
    let update = ContextUpdate {
        task_id: Some(seen.task.id.to_string()),
        source: "clickup".into(),
        text,
        author,
        channel: None,
        ts: None,
        change: Some(change.to_owned()),
        task: Some(seen.task_ref()),
        transfer: None,
    };
    let key = format!("clickup:{}", job.id);
    emit(
        ctx,
        job.tenant_id,
        &known,
        &update,
        &key,
        job.trace_id.as_deref(),
    )
    .await
}

/// Sends the task to agents it has not reached yet, and remembers they have it.
async fn assign(
    ctx: &Context,
    job: &Job,
    seen: &Seen,
    change: &str,
    agents: &[AgentId],
) -> Result<(), JobError> {
    let tm = &seen.now;
    let assigned = TaskAssigned {
        task: seen.task_ref(),
        mapping: MappingRef {
            slack_channel: tm.slack_channel_id.to_string(),
            slack_thread_ts: tm.slack_thread_ts.as_ref().map(ToString::to_string),
        },
        change: change.to_owned(),
    };
    let key = format!("assign:{}", tm.id);
    emit(
        ctx,
        job.tenant_id,
        agents,
        &assigned,
        &key,
        job.trace_id.as_deref(),
    )
    .await?;
    ctx.store.add_task_agents(tm.id, agents).await?;
    Ok(())
}

/// What agents who had the task already are told, unless it is nothing they don't
/// know: the status update ClickUp sends right after `taskCreated` is already in the
/// task they were given. `added`: how many agents the task just reached.
fn news(change: &str, event: &str, seen: &Seen, added: usize, comment: String) -> Option<String> {
    let same_status = seen
        .before
        .as_ref()
        .is_some_and(|b| b.status == seen.now.status);
    match change {
        "created" => None,
        "comment" => Some(comment),
        "status" if same_status => None,
        "status" => Some(format!("status is now \"{}\"", seen.task.status)),
        "assigned" if added == 0 => Some("the assignees changed".to_owned()),
        "assigned" => Some(format!("{added} more agent(s) assigned")),
        _ => Some(format!("the task was updated ({event})")),
    }
}

/// Changes Nexus made itself come back as webhooks: by its own ClickUp user, or a
/// comment whose id its API call returned.
async fn own_change(
    ctx: &Context,
    source: &Source,
    items: &[HistoryItem],
) -> Result<bool, JobError> {
    if items.is_empty() {
        return Ok(false);
    }
    for item in items {
        let by_us = match (&item.user, &source.bot_user) {
            (Some(u), Some(me)) => u.id.as_str() == me,
            _ => false,
        };
        let ours = match &item.comment {
            Some(c) => {
                ctx.store
                    .is_own_write(source.tenant_id, Provider::Clickup, &c.id)
                    .await?
            }
            None => false,
        };
        if !by_us && !ours {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Assignees (through identities) and `@alias` mentions; the mapping's defaults when
/// the task names nobody.
async fn recipients(
    ctx: &Context,
    source: &Source,
    mapping: &ProjectMapping,
    task: &ClickUpTask,
    comment: &str,
) -> Result<Vec<AgentId>, JobError> {
    let tenant = source.tenant_id;
    let mut agents = ctx
        .store
        .agents_by_identity(tenant, &task.assignees)
        .await?;
    let text = format!("{}\n{}\n{}", task.name, task.description, comment);
    let mut mentions = Mentions::parse(&text);
    // ClickUp has no Slack users.
    mentions.slack_users.clear();
    agents.extend(
        mentions
            .agents(&ctx.store, tenant)
            .await?
            .into_iter()
            .map(|(a, _)| a),
    );
    if agents.is_empty() {
        for agent in &mapping.default_agents {
            if ctx.agent(*agent).await?.status == AgentStatus::Active {
                agents.push(*agent);
            }
        }
    }
    agents.sort();
    agents.dedup();
    Ok(agents)
}

/// Posts the task in the mapped channel; that message becomes the task's thread. The
/// post is one write per task, whichever job makes it: a job that finds another making
/// it waits for that one (see [`post_once`]). Without a Slack token, or when Slack
/// refuses for good, the task goes out threadless.
async fn open_thread(
    ctx: &Context,
    job: &Job,
    mapping: &ProjectMapping,
    tm: &mut TaskMapping,
    task: &ClickUpTask,
) -> Result<(), JobError> {
    let Some(token) = api_token(ctx, tm.tenant_id, SourceKind::Slack).await? else {
        tracing::warn!(task_id = %task.id, "no Slack bot token for this tenant: the task's thread was not opened");
        return Ok(());
    };
    let op_key = format!("thread:{}", tm.id);
    let text = format!("<{}|{}>", task.url, slack_escape(&task.name));
    let post = SlackPost {
        token: &token,
        channel: &mapping.slack_channel_id,
        text: &text,
        thread_ts: None,
    };
    let effect = Effect {
        tenant: tm.tenant_id,
        holder: job.holder(),
        op_key: &op_key,
    };
    match post_once(ctx, effect, post).await? {
        Ok(posted) => {
            ctx.store.set_thread(tm.id, &posted.ts).await?;
            tm.slack_thread_ts = Some(posted.ts);
            Ok(())
        }
        Err(e) => match JobError::from(e) {
            e @ JobError::Permanent { .. } => {
                tracing::warn!(task_id = %task.id, error = %e, "Slack refused the task's thread; the task goes out without one");
                Ok(())
            }
            e => Err(e),
        },
    }
}

/// Slack's three control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A deleted task: its agents hear so; there is nothing to fetch.
async fn deleted(
    ctx: &Context,
    source: &Source,
    task_id: &ClickUpTaskId,
    job: &Job,
) -> Result<Done, JobError> {
    let Some(tm) = ctx
        .store
        .task_by_clickup_id(source.tenant_id, task_id)
        .await?
    else {
        return Done::because("unmapped");
    };
    let agents = ctx.store.task_agents(tm.id).await?;
    let update = ContextUpdate {
        task_id: Some(task_id.to_string()),
        source: "clickup".into(),
        text: "the task was deleted".into(),
        change: Some("deleted".into()),
        ..ContextUpdate::default()
    };
    emit(
        ctx,
        job.tenant_id,
        &agents,
        &update,
        &format!("clickup:{}", job.id),
        job.trace_id.as_deref(),
    )
    .await?;
    Ok(Done::default())
}
