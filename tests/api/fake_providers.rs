//! Local stand-ins for the Slack Web API (under `/slack`) and the ClickUp API v2 (under
//! `/clickup`): they check the token and the request shape as the real ones do, answer
//! in their format, and record every request for the test to inspect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const SLACK_BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const CLICKUP_TOKEN: &str = "pk_test_clickup_token";

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
    pub body: Value,
}

struct Canned {
    path: String,
    status: StatusCode,
    retry_after_s: Option<u64>,
    location: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    tasks: Mutex<HashMap<String, Value>>,
    /// Answers given instead of the normal one, first come first served, by path.
    canned: Mutex<Vec<Canned>>,
    /// Paths that do not answer until released.
    held: Mutex<Vec<String>>,
    released: tokio::sync::Notify,
    seq: AtomicU64,
}

pub struct FakeProviders {
    base: String,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

impl Drop for FakeProviders {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProviders {
            base,
            inner,
            server,
        }
    }

    pub fn slack_url(&self) -> String {
        format!("{}/slack", self.base)
    }

    pub fn clickup_url(&self) -> String {
        format!("{}/clickup", self.base)
    }

    pub fn put_task(&self, task: Value) {
        let id = task["id"].as_str().expect("task id").to_owned();
        self.inner.tasks.lock().expect("lock").insert(id, task);
    }

    /// The next request to `path` gets `status` and `body` instead of the normal answer.
    pub fn fail_next(&self, path: &str, status: u16, body: Value) {
        self.fail_next_with(path, status, None, body);
    }

    /// As [`FakeProviders::fail_next`], with a `Retry-After` (seconds).
    pub fn fail_next_with(&self, path: &str, status: u16, retry_after_s: Option<u64>, body: Value) {
        let status = StatusCode::from_u16(status).expect("status");
        self.inner.canned.lock().expect("lock").push(Canned {
            path: path.to_owned(),
            status,
            retry_after_s,
            location: None,
            body,
        });
    }

    /// The next request to `path` is answered `302 Found` to `location` (on this server).
    pub fn redirect_next(&self, path: &str, location: &str) {
        self.inner.canned.lock().expect("lock").push(Canned {
            path: path.to_owned(),
            status: StatusCode::FOUND,
            retry_after_s: None,
            location: Some(format!("{}{location}", self.base)),
            body: json!({}),
        });
    }

    /// Requests to `path` are recorded but not answered until [`FakeProviders::release`].
    pub fn hold(&self, path: &str) {
        self.inner.held.lock().expect("lock").push(path.to_owned());
    }

    /// Requests to `path` held so far, and later ones, are answered normally.
    pub fn release(&self, path: &str) {
        self.inner.held.lock().expect("lock").retain(|p| p != path);
        self.inner.released.notify_waiters();
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.inner
            .requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// A ClickUp task as `GET /task/{id}` returns it (the fields Nexus reads, and some it doesn't).
pub fn task_json(id: &str, name: &str, status: &str, list: &str, assignees: &[u64]) -> Value {
    json!({
        "id": id,
        "name": name,
        "text_content": "",
        "status": {"status": status, "color": "#d3d3d3", "type": "custom"},
        "url": format!("https://app.clickup.com/t/{id}"),
        "list": {"id": list, "name": "Backlog"},
        "assignees": assignees.iter().map(|a| json!({"id": a, "username": format!("user{a}")})).collect::<Vec<_>>(),
        "priority": null,
    })
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.requests.lock().expect("lock").push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        auth: auth.clone(),
        body: body.clone(),
    });
    loop {
        // Registered before the check, so a release in between is not missed.
        let released = inner.released.notified();
        if !inner.held.lock().expect("lock").contains(&path) {
            break;
        }
        released.await;
    }
    let canned = {
        let mut canned = inner.canned.lock().expect("lock");
        canned
            .iter()
            .position(|c| c.path == path)
            .map(|i| canned.remove(i))
    };
    if let Some(c) = canned {
        let mut resp = (c.status, axum::Json(c.body)).into_response();
        if let Some(s) = c.retry_after_s {
            resp.headers_mut().insert("retry-after", s.into());
        }
        if let Some(to) = c.location.and_then(|l| l.parse().ok()) {
            resp.headers_mut().insert("location", to);
        }
        return resp;
    }
    let n = inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["slack", "chat.postMessage"]) => {
            if auth.as_deref() != Some(&format!("Bearer {SLACK_BOT_TOKEN}")) {
                return ok(json!({"ok": false, "error": "invalid_auth"}));
            }
            match (body["channel"].as_str(), body["text"].as_str()) {
                (Some(channel), Some(_)) => {
                    ok(json!({"ok": true, "channel": channel, "ts": format!("1700000000.{n:06}")}))
                }
                _ => ok(json!({"ok": false, "error": "invalid_arguments"})),
            }
        }
        (_, ["clickup", ..]) if auth.as_deref() != Some(CLICKUP_TOKEN) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"err": "Token invalid", "ECODE": "OAUTH_025"})),
        )
            .into_response(),
        ("GET", ["clickup", "task", id]) => match inner.tasks.lock().expect("lock").get(*id) {
            Some(task) => ok(task.clone()),
            None => not_found(),
        },
        ("POST", ["clickup", "task", id, "comment"]) => {
            if !inner.tasks.lock().expect("lock").contains_key(*id) {
                return not_found();
            }
            match body["comment_text"].as_str() {
                Some(_) => ok(
                    json!({"id": 90_000 + n, "hist_id": format!("h{n}"), "date": 1_700_000_000_000u64}),
                ),
                None => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"err": "Comment text is required", "ECODE": "COMM_001"})),
                )
                    .into_response(),
            }
        }
        ("PUT", ["clickup", "task", id]) => {
            let mut tasks = inner.tasks.lock().expect("lock");
            match (tasks.get_mut(*id), body["status"].as_str()) {
                (Some(task), Some(status)) => {
                    task["status"]["status"] = json!(status);
                    ok(task.clone())
                }
                (None, _) => not_found(),
                (Some(_), None) => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"err": "Status invalid"})),
                )
                    .into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "no such endpoint").into_response(),
    }
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"err": "Task not found", "ECODE": "ITEM_013"})),
    )
        .into_response()
}
