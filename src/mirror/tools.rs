//! The provider tools: `slack.post_message`, `clickup.create_comment`,
//! `clickup.update_status` and `task.reply` (one post in the task's Slack thread and
//! one ClickUp comment). Each write is recorded with its result under a step key, so a
//! retried job skips what already happened, and the webhook echo of it is ignored.
//! Targets are checked against the tenant's tool scope before a call is queued, and
//! broadcasts in Slack text are neutralised unless the tenant allows them.

use std::borrow::Cow;

use nexus_proto::{ClickUpTaskId, SlackChannelId, SlackTs, TenantId, ToolError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Effect, SlackPost, api_token, broadcast, effects, post_once};
use crate::context::{Context, ToolPolicy};
use crate::providers::{Posted, ProviderError};
use crate::queue::JobError;
use crate::store::{Holder, Provider, Secret, SourceKind, StoreError, ToolScope};

/// Longest text posted or commented (Slack's own limit is 40,000 characters).
const MAX_TEXT: usize = 40_000;

/// A tool and its arguments, as agents name them in `tool_request` (`tool`, `args`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "tool", content = "args")]
pub enum ToolCall {
    #[serde(rename = "slack.post_message")]
    PostMessage(PostArgs),
    #[serde(rename = "clickup.create_comment")]
    CreateComment(CommentArgs),
    #[serde(rename = "clickup.update_status")]
    UpdateStatus(StatusArgs),
    /// One post in the task's Slack thread and one ClickUp comment.
    #[serde(rename = "task.reply")]
    TaskReply(CommentArgs),
}

/// Every tool's name, for telling an unknown tool from bad arguments.
const NAMES: [&str; 4] = [
    "slack.post_message",
    "clickup.create_comment",
    "clickup.update_status",
    "task.reply",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostArgs {
    channel: SlackChannelId,
    text: String,
    thread_ts: Option<SlackTs>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommentArgs {
    task_id: ClickUpTaskId,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusArgs {
    task_id: ClickUpTaskId,
    status: String,
}

/// Who asked, and the job attempt making the request's writes; the job names them
/// (`tool:{job}:slack`), so a retry skips the finished ones.
pub struct Step<'a> {
    pub tenant: TenantId,
    pub holder: Holder<'a>,
    /// Post broadcasts in Slack text as written (the tenant's `allow_broadcasts`).
    pub allow_broadcasts: bool,
}

/// Why a tool did not answer: try again later, or answer the agent with this error.
#[derive(Debug)]
pub enum ToolFailure {
    Retry(JobError),
    Fail(ToolError),
}

impl ToolFailure {
    pub fn fail(code: &str, message: impl Into<String>) -> ToolFailure {
        ToolFailure::Fail(ToolError::new(code, message))
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

impl ToolCall {
    /// The call an agent asked for: `unknown_tool` or `invalid_args` when it is not one.
    pub fn parse(tool: &str, args: Value) -> Result<ToolCall, ToolError> {
        if !NAMES.contains(&tool) {
            let shown: String = tool.chars().take(64).collect();
            return Err(ToolError::new(
                "unknown_tool",
                format!("no tool named {shown:?}"),
            ));
        }
        serde_json::from_value(json!({ "tool": tool, "args": args }))
            .map_err(|e| ToolError::new("invalid_args", format!("invalid args: {e}")))
    }

    /// `target_not_allowed` for a channel or task outside the tenant's mappings, unless
    /// its tool scope is `any`. A task counts as inside when Nexus knows it from a
    /// mapped list: one it has not seen yet is refused, never looked up at ClickUp.
    pub async fn check_target(
        &self,
        ctx: &Context,
        tenant: TenantId,
        policy: &ToolPolicy,
    ) -> Result<(), ToolFailure> {
        if policy.scope == ToolScope::Any {
            return Ok(());
        }
        let task = match self {
            ToolCall::PostMessage(a) if policy.channels.contains(&a.channel) => return Ok(()),
            ToolCall::PostMessage(a) => {
                return Err(not_allowed(format!(
                    "Slack channel {} is not a mapped channel of this tenant",
                    a.channel
                )));
            }
            ToolCall::CreateComment(a) | ToolCall::TaskReply(a) => &a.task_id,
            ToolCall::UpdateStatus(a) => &a.task_id,
        };
        match ctx.store.task_by_clickup_id(tenant, task).await? {
            Some(tm) if policy.mappings.contains(&tm.project_mapping_id) => Ok(()),
            _ => Err(not_allowed(format!(
                "ClickUp task {task} is not in a mapped list of this tenant (or not seen there yet)"
            ))),
        }
    }

    pub async fn run(self, ctx: &Context, step: &Step<'_>) -> Result<Value, ToolFailure> {
        match self {
            ToolCall::PostMessage(a) => {
                let thread = a.thread_ts.as_ref();
                let posted = post(ctx, step, &a.channel, text(&a.text)?, thread).await?;
                Ok(json!({ "channel": posted.channel, "ts": posted.ts }))
            }
            ToolCall::CreateComment(a) => {
                let id = comment(ctx, step, &a.task_id, text(&a.text)?).await?;
                Ok(json!({ "task_id": a.task_id, "comment_id": id }))
            }
            ToolCall::UpdateStatus(a) => update_status(ctx, step, a).await,
            ToolCall::TaskReply(a) => task_reply(ctx, step, a).await,
        }
    }
}

fn not_allowed(message: String) -> ToolFailure {
    let hint =
        "; an operator can map it, or allow any target with `nexus tenant set --tool-scope any`";
    ToolFailure::fail("target_not_allowed", message + hint)
}

fn text(t: &str) -> Result<&str, ToolFailure> {
    let n = t.chars().count();
    if t.trim().is_empty() || n > MAX_TEXT {
        return Err(ToolFailure::fail(
            "invalid_args",
            format!("text must be 1–{MAX_TEXT} characters"),
        ));
    }
    Ok(t)
}

async fn token(ctx: &Context, step: &Step<'_>, kind: SourceKind) -> Result<Secret, ToolFailure> {
    api_token(ctx, step.tenant, kind).await?.ok_or_else(|| {
        let (code, how) = match kind {
            SourceKind::Slack => ("slack_not_configured", "a Slack source with --bot-token"),
            _ => (
                "clickup_not_configured",
                "a ClickUp source with --api-token",
            ),
        };
        ToolFailure::fail(
            code,
            format!("this tenant has no {} token: add {how}", kind.as_str()),
        )
    })
}

async fn update_status(
    ctx: &Context,
    step: &Step<'_>,
    a: StatusArgs,
) -> Result<Value, ToolFailure> {
    if a.status.trim().is_empty() {
        return Err(ToolFailure::fail(
            "invalid_args",
            "status must not be empty",
        ));
    }
    let token = token(ctx, step, SourceKind::Clickup).await?;
    // Setting a status twice is harmless: no step record needed.
    let task = ctx
        .providers
        .clickup
        .update_status(&token, &a.task_id, &a.status)
        .await?;
    // Agents already know: the webhook echo of this change is no news.
    if let Some(tm) = ctx.store.task_by_clickup_id(step.tenant, &task.id).await? {
        ctx.store.set_task_status(tm.id, &task.status).await?;
    }
    Ok(json!({ "task_id": task.id, "status": task.status }))
}

async fn task_reply(ctx: &Context, step: &Step<'_>, a: CommentArgs) -> Result<Value, ToolFailure> {
    let body = text(&a.text)?;
    let Some(tm) = ctx
        .store
        .task_by_clickup_id(step.tenant, &a.task_id)
        .await?
    else {
        return Err(ToolFailure::fail(
            "unknown_task",
            format!("task \"{}\" is not in a mapped list", a.task_id),
        ));
    };
    let thread = tm.slack_thread_ts.as_ref();
    let posted = post(ctx, step, &tm.slack_channel_id, body, thread).await?;
    // A task without a thread gets one: this reply starts it.
    if tm.slack_thread_ts.is_none() {
        ctx.store.set_thread(tm.id, &posted.ts).await?;
    }
    let comment = comment(ctx, step, &tm.clickup_task_id, body).await?;
    Ok(json!({
        "task_id": tm.clickup_task_id,
        "slack": { "channel": posted.channel, "ts": posted.ts },
        "clickup": { "comment_id": comment },
    }))
}

/// Posts once per (job, step): a retry returns the message an earlier attempt posted.
async fn post(
    ctx: &Context,
    step: &Step<'_>,
    channel: &SlackChannelId,
    text: &str,
    thread_ts: Option<&SlackTs>,
) -> Result<Posted, ToolFailure> {
    let op_key = format!("tool:{}:slack", step.holder.job_id);
    let token = token(ctx, step, SourceKind::Slack).await?;
    let text = if step.allow_broadcasts {
        Cow::Borrowed(text)
    } else {
        broadcast::neutralise(text)
    };
    let post = SlackPost {
        token: &token,
        channel,
        text: &text,
        thread_ts,
    };
    let effect = Effect {
        tenant: step.tenant,
        holder: step.holder,
        op_key: &op_key,
    };
    Ok(post_once(ctx, effect, post)
        .await
        .map_err(ToolFailure::Retry)??)
}

/// Comments once per (job, step); returns the comment's id. A comment an unfinished
/// attempt may have made is found by its text, among comments Nexus has no record of.
async fn comment(
    ctx: &Context,
    step: &Step<'_>,
    task_id: &ClickUpTaskId,
    text: &str,
) -> Result<String, ToolFailure> {
    let op_key = format!("tool:{}:clickup", step.holder.job_id);
    let token = &token(ctx, step, SourceKind::Clickup).await?;
    let clickup = &ctx.providers.clickup;
    let effect = Effect {
        tenant: step.tenant,
        holder: step.holder,
        op_key: &op_key,
    };
    let find = |since: i64| async move {
        // ClickUp's clock and the database's may disagree by a little.
        let found = clickup
            .find_comments(token, task_id, since - 60_000, text)
            .await?;
        for id in found {
            let known = ctx
                .store
                .is_own_write(step.tenant, Provider::Clickup, &id)
                .await;
            if !known.map_err(|e| ProviderError::Transient {
                provider: "ClickUp",
                message: format!("cannot check the comment against Nexus's records: {e}"),
                retry_after_ms: None,
            })? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    };
    let make = || clickup.create_comment(token, task_id, text);
    let made = |id: &String| (Provider::Clickup, id.clone());
    Ok(effects::once(ctx, effect, find, make, made)
        .await
        .map_err(ToolFailure::Retry)??)
}
