//! The ClickUp API, as far as `--via clickup` needs it: every ClickUp webhook makes
//! Nexus read the task (`GET /task/{id}`), and ClickUp is not reachable from here.
//!
//! Stateless: a load-test task id says everything the task holds —
//! `lt-{assignee}-{i}-{t_ns}` is a task in [`LIST`] assigned to ClickUp user
//! `assignee`, named `lt:{i}:{t_ns}` (the stamp the agent's client reads back).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use crate::wire::stamp_text;

/// The ClickUp list the load test maps to a Slack channel.
pub const LIST: &str = "900100LT";

pub struct FakeClickUp {
    /// Base URL for `--clickup-api-url`.
    pub url: String,
    pub token: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    token: String,
    served: AtomicU64,
    refused: AtomicU64,
}

impl FakeClickUp {
    pub async fn start() -> Result<FakeClickUp> {
        let token = format!("pk_lt_{}", uuid::Uuid::new_v4().simple());
        let inner = Arc::new(Inner {
            token: token.clone(),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/task/{id}", get(get_task))
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake ClickUp API")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeClickUp {
            url,
            token,
            inner,
            task,
        })
    }

    /// Task reads answered, and requests refused (a wrong token or a task id this
    /// tool never made): the second must stay 0 for a run to count.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.served.load(Ordering::Relaxed),
            self.inner.refused.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FakeClickUp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task id `--via clickup` creates for event `i` to the agent with ClickUp user `assignee`.
pub fn task_id(assignee: u64, i: u64, t_ns: u64) -> String {
    format!("lt-{assignee}-{i}-{t_ns}")
}

fn parse_task_id(id: &str) -> Option<(u64, u64, u64)> {
    let mut parts = id.strip_prefix("lt-")?.splitn(3, '-');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

async fn get_task(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // ClickUp personal tokens go bare in Authorization, without "Bearer".
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == inner.token);
    let parsed = parse_task_id(&id);
    let (true, Some((assignee, i, t_ns))) = (authorized, parsed) else {
        inner.refused.fetch_add(1, Ordering::Relaxed);
        let (status, err) = if authorized {
            (StatusCode::NOT_FOUND, "Task not found")
        } else {
            (StatusCode::UNAUTHORIZED, "Token invalid")
        };
        return (status, axum::Json(json!({"err": err, "ECODE": "LT_001"}))).into_response();
    };
    inner.served.fetch_add(1, Ordering::Relaxed);
    axum::Json(json!({
        "id": id,
        "name": stamp_text(i, t_ns),
        "text_content": "",
        "status": {"status": "to do", "color": "#d3d3d3", "type": "open"},
        "url": format!("https://app.clickup.com/t/{id}"),
        "list": {"id": LIST, "name": "Load test"},
        "assignees": [{"id": assignee, "username": format!("lt{assignee}")}],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip() {
        let id = task_id(17, 42, 1_700_000_000_123_456_789);
        assert_eq!(
            parse_task_id(&id),
            Some((17, 42, 1_700_000_000_123_456_789))
        );
        assert_eq!(parse_task_id("86abc123"), None);
        assert_eq!(parse_task_id("lt-1-2"), None);
    }
}
