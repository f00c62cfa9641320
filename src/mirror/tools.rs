//! The provider tools: `slack.post_message`, `clickup.create_comment`,
//! `clickup.update_status` and `task.reply` (one post in the task's Slack thread and
//! one ClickUp comment). Each write is recorded with its result under a step key, so a
//! retried job skips what already happened, and the webhook echo of it is ignored.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api_token;
use crate::providers::Posted;
use crate::state::AppState;
use crate::store::{Provider, Secret, SourceKind};
use crate::tools::{Tool, ToolCall, ToolFailure, ToolRegistry};

/// Longest text posted or commented (Slack's own limit is 40,000 characters).
const MAX_TEXT: usize = 40_000;

pub fn registry() -> ToolRegistry {
    let mut r = ToolRegistry::default();
    r.register("slack.post_message", Arc::new(PostMessage));
    r.register("clickup.create_comment", Arc::new(CreateComment));
    r.register("clickup.update_status", Arc::new(UpdateStatus));
    r.register("task.reply", Arc::new(TaskReply));
    r
}

fn args<T: DeserializeOwned>(call: &ToolCall) -> Result<T, ToolFailure> {
    serde_json::from_value(call.args.clone())
        .map_err(|e| ToolFailure::fail("invalid_args", format!("invalid args: {e}")))
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

async fn token(state: &AppState, call: &ToolCall, kind: SourceKind) -> Result<Secret, ToolFailure> {
    api_token(state, call.tenant, kind).await?.ok_or_else(|| {
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

/// Posts once per (job, step): a retry returns the message the first attempt posted.
async fn post_once(
    state: &AppState,
    call: &ToolCall,
    channel: &str,
    text: &str,
    thread_ts: Option<&str>,
) -> Result<Posted, ToolFailure> {
    let op_key = format!("tool:{}:slack", call.job_id);
    if let Some(done) = state.store.write_result(&op_key).await?
        && let Ok(posted) = serde_json::from_str(&done)
    {
        return Ok(posted);
    }
    let token = token(state, call, SourceKind::Slack).await?;
    let posted = state
        .providers
        .slack
        .post_message(&token, channel, text, thread_ts)
        .await?;
    let result = serde_json::to_string(&posted).unwrap_or_default();
    state
        .store
        .record_write(
            call.tenant,
            Provider::Slack,
            &format!("{}:{}", posted.channel, posted.ts),
            Some(&op_key),
            &result,
        )
        .await?;
    Ok(posted)
}

/// Comments once per (job, step); returns the comment's id.
async fn comment_once(
    state: &AppState,
    call: &ToolCall,
    task_id: &str,
    text: &str,
) -> Result<String, ToolFailure> {
    let op_key = format!("tool:{}:clickup", call.job_id);
    if let Some(id) = state.store.write_result(&op_key).await? {
        return Ok(id);
    }
    let token = token(state, call, SourceKind::Clickup).await?;
    let id = state
        .providers
        .clickup
        .create_comment(&token, task_id, text)
        .await?;
    state
        .store
        .record_write(call.tenant, Provider::Clickup, &id, Some(&op_key), &id)
        .await?;
    Ok(id)
}

struct PostMessage;

#[derive(Deserialize)]
struct PostArgs {
    channel: String,
    text: String,
    thread_ts: Option<String>,
}

impl Tool for PostMessage {
    fn call(
        &self,
        state: AppState,
        call: ToolCall,
    ) -> BoxFuture<'static, Result<Value, ToolFailure>> {
        async move {
            let a: PostArgs = args(&call)?;
            let posted = post_once(
                &state,
                &call,
                &a.channel,
                text(&a.text)?,
                a.thread_ts.as_deref(),
            )
            .await?;
            Ok(json!({ "channel": posted.channel, "ts": posted.ts }))
        }
        .boxed()
    }
}

struct CreateComment;

#[derive(Deserialize)]
struct CommentArgs {
    task_id: String,
    text: String,
}

impl Tool for CreateComment {
    fn call(
        &self,
        state: AppState,
        call: ToolCall,
    ) -> BoxFuture<'static, Result<Value, ToolFailure>> {
        async move {
            let a: CommentArgs = args(&call)?;
            let id = comment_once(&state, &call, &a.task_id, text(&a.text)?).await?;
            Ok(json!({ "task_id": a.task_id, "comment_id": id }))
        }
        .boxed()
    }
}

struct UpdateStatus;

#[derive(Deserialize)]
struct StatusArgs {
    task_id: String,
    status: String,
}

impl Tool for UpdateStatus {
    fn call(
        &self,
        state: AppState,
        call: ToolCall,
    ) -> BoxFuture<'static, Result<Value, ToolFailure>> {
        async move {
            let a: StatusArgs = args(&call)?;
            if a.status.trim().is_empty() {
                return Err(ToolFailure::fail(
                    "invalid_args",
                    "status must not be empty",
                ));
            }
            let token = token(&state, &call, SourceKind::Clickup).await?;
            // Setting a status twice is harmless: no step record needed.
            let task = state
                .providers
                .clickup
                .update_status(&token, &a.task_id, &a.status)
                .await?;
            // Agents already know: the webhook echo of this change is no news.
            if let Some(tm) = state
                .store
                .task_by_clickup_id(call.tenant, &task.id)
                .await?
            {
                state.store.set_task_status(tm.id, &task.status).await?;
            }
            Ok(json!({ "task_id": task.id, "status": task.status }))
        }
        .boxed()
    }
}

struct TaskReply;

impl Tool for TaskReply {
    fn call(
        &self,
        state: AppState,
        call: ToolCall,
    ) -> BoxFuture<'static, Result<Value, ToolFailure>> {
        async move {
            let a: CommentArgs = args(&call)?;
            let body = text(&a.text)?;
            let Some(tm) = state
                .store
                .task_by_clickup_id(call.tenant, &a.task_id)
                .await?
            else {
                return Err(ToolFailure::fail(
                    "unknown_task",
                    format!("task {:?} is not in a mapped list", a.task_id),
                ));
            };
            let posted = post_once(
                &state,
                &call,
                &tm.slack_channel_id,
                body,
                tm.slack_thread_ts.as_deref(),
            )
            .await?;
            // A task without a thread gets one: this reply starts it.
            if tm.slack_thread_ts.is_none() {
                state.store.set_thread(tm.id, Some(&posted.ts)).await?;
            }
            let comment = comment_once(&state, &call, &tm.clickup_task_id, body).await?;
            Ok(json!({
                "task_id": tm.clickup_task_id,
                "slack": { "channel": posted.channel, "ts": posted.ts },
                "clickup": { "comment_id": comment },
            }))
        }
        .boxed()
    }
}
