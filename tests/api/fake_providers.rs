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
    /// The body, without Slack's `metadata` (which is in [`Recorded::metadata`]).
    pub body: Value,
    pub metadata: Value,
}

struct Canned {
    path: String,
    /// Do what was asked, then lose the answer (the connection breaks mid-response).
    lose: bool,
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
    /// Messages posted (`chat.postMessage`), for `conversations.history`/`replies`.
    messages: Mutex<Vec<Value>>,
    /// Comments made, by task, newest first (as ClickUp lists them).
    comments: Mutex<HashMap<String, Vec<Value>>>,
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
            lose: false,
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
            lose: false,
            status: StatusCode::FOUND,
            retry_after_s: None,
            location: Some(format!("{}{location}", self.base)),
            body: json!({}),
        });
    }

    /// The next request to `path` takes effect, but its answer is lost on the way back:
    /// the caller cannot know whether it did.
    pub fn lose_answer_next(&self, path: &str) {
        self.inner.canned.lock().expect("lock").push(Canned {
            path: path.to_owned(),
            lose: true,
            status: StatusCode::OK,
            retry_after_s: None,
            location: None,
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

    /// Messages Slack has, as `conversations.history` returns them.
    pub fn slack_messages(&self) -> Vec<Value> {
        self.inner.messages.lock().expect("lock").clone()
    }

    /// Comments on the task, newest first.
    pub fn comments_on(&self, task: &str) -> Vec<Value> {
        let comments = self.inner.comments.lock().expect("lock");
        comments.get(task).cloned().unwrap_or_default()
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
    let mut body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Read methods take a query string: recorded as a JSON object like a body.
    if let Some(url) = uri
        .query()
        .and_then(|q| reqwest::Url::parse(&format!("http://q/?{q}")).ok())
    {
        let pairs = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())));
        body = Value::Object(pairs.collect());
    }
    let mut shown = body.clone();
    let metadata = shown
        .as_object_mut()
        .and_then(|o| o.remove("metadata"))
        .unwrap_or(Value::Null);
    inner.requests.lock().expect("lock").push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        auth: auth.clone(),
        body: shown,
        metadata,
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
    let lose = canned.as_ref().is_some_and(|c| c.lose);
    if let Some(c) = canned.filter(|c| !c.lose) {
        let mut resp = (c.status, axum::Json(c.body)).into_response();
        if let Some(s) = c.retry_after_s {
            resp.headers_mut().insert("retry-after", s.into());
        }
        if let Some(to) = c.location.and_then(|l| l.parse().ok()) {
            resp.headers_mut().insert("location", to);
        }
        return resp;
    }
    let resp = respond(&inner, &method, &path, auth.as_deref(), &body);
    if !lose {
        return resp;
    }
    let broken = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("the answer is lost"))
    });
    (resp.status(), axum::body::Body::from_stream(broken)).into_response()
}

/// The normal answer to a request.
fn respond(
    inner: &Inner,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    body: &Value,
) -> Response {
    let n = inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        (_, ["slack", ..]) if auth != Some(&format!("Bearer {SLACK_BOT_TOKEN}")) => {
            ok(json!({"ok": false, "error": "invalid_auth"}))
        }
        ("POST", ["slack", "chat.postMessage"]) => {
            let (Some(channel), Some(text)) = (body["channel"].as_str(), body["text"].as_str())
            else {
                return ok(json!({"ok": false, "error": "invalid_arguments"}));
            };
            let ts = format!("{}.{n:06}", now_ms() / 1000);
            inner.messages.lock().expect("lock").push(json!({
                "type": "message", "channel": channel, "ts": ts, "text": text,
                "thread_ts": body["thread_ts"], "metadata": body["metadata"], "bot_id": "B1",
            }));
            ok(json!({"ok": true, "channel": channel, "ts": ts}))
        }
        (
            "GET",
            [
                "slack",
                method @ ("conversations.history" | "conversations.replies"),
            ],
        ) => {
            let oldest: f64 = body["oldest"]
                .as_str()
                .and_then(|o| o.parse().ok())
                .unwrap_or(0.0);
            let in_thread = *method == "conversations.replies";
            let messages: Vec<Value> = inner
                .messages
                .lock()
                .expect("lock")
                .iter()
                .filter(|m| m["channel"] == body["channel"])
                .filter(|m| !in_thread || m["thread_ts"] == body["ts"] || m["ts"] == body["ts"])
                .filter(|m| m["ts"].as_str().and_then(|t| t.parse::<f64>().ok()) >= Some(oldest))
                .map(|m| {
                    let mut m = m.clone();
                    // Metadata is only shown to those who ask for it.
                    if body["include_all_metadata"] != "true" {
                        m["metadata"] = Value::Null;
                    }
                    m
                })
                .collect();
            ok(json!({"ok": true, "messages": messages, "has_more": false}))
        }
        (_, ["clickup", ..]) if auth != Some(CLICKUP_TOKEN) => (
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
                Some(text) => {
                    let (comment_id, date) = (90_000 + n, now_ms());
                    let comment = json!({"id": comment_id.to_string(), "comment_text": text, "date": date.to_string()});
                    inner
                        .comments
                        .lock()
                        .expect("lock")
                        .entry(id.to_string())
                        .or_default()
                        .insert(0, comment);
                    ok(json!({"id": comment_id, "hist_id": format!("h{n}"), "date": date}))
                }
                None => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"err": "Comment text is required", "ECODE": "COMM_001"})),
                )
                    .into_response(),
            }
        }
        ("GET", ["clickup", "task", id, "comment"]) => {
            let comments = inner.comments.lock().expect("lock").get(*id).cloned();
            ok(json!({"comments": comments.unwrap_or_default()}))
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
