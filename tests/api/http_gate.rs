//! An HTTP forwarder between a client under test and a node, that a test can point at
//! a new node, make hold one request until told to go on, or make answer every request
//! with an error — what a load balancer in front of a failing node looks like.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

struct Hold {
    suffix: String,
    held: Option<oneshot::Sender<()>>,
    release: Option<oneshot::Receiver<()>>,
}

struct Inner {
    upstream: Mutex<SocketAddr>,
    hold: Mutex<Option<Hold>>,
    fail_with: Mutex<Option<(String, StatusCode)>>,
    seen: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct Gate {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Gate {
    pub async fn start(upstream: SocketAddr) -> Gate {
        let inner = Arc::new(Inner {
            upstream: Mutex::new(upstream),
            hold: Mutex::default(),
            fail_with: Mutex::default(),
            seen: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gate");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("gate") });
        Gate { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn retarget(&self, upstream: SocketAddr) {
        *self.inner.upstream.lock().expect("lock") = upstream;
    }

    /// Every request to a path starting with `prefix` answered with `status` (None:
    /// all forwarded again).
    pub fn fail_with(&self, prefix: &str, status: Option<StatusCode>) {
        *self.inner.fail_with.lock().expect("lock") = status.map(|s| (prefix.to_owned(), s));
    }

    /// Holds the first request whose path ends with `suffix`: the first receiver fires
    /// when it arrives, and it is forwarded when the returned sender is used (or dropped).
    pub fn hold(&self, suffix: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (held_tx, held_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.inner.hold.lock().expect("lock") = Some(Hold {
            suffix: suffix.to_owned(),
            held: Some(held_tx),
            release: Some(release_rx),
        });
        (held_rx, release_tx)
    }

    /// `METHOD path` of every request seen.
    pub fn seen(&self) -> Vec<String> {
        self.inner.seen.lock().expect("lock").clone()
    }
}

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (method, uri, headers) = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    inner
        .seen
        .lock()
        .expect("lock")
        .push(format!("{method} {}", uri.path()));
    let failing = inner.fail_with.lock().expect("lock").clone();
    if let Some((_, status)) = failing.filter(|(prefix, _)| uri.path().starts_with(prefix)) {
        return (
            status,
            r#"{"error":{"code":"unavailable","message":"gate says no"}}"#,
        )
            .into_response();
    }
    let release = {
        let mut hold = inner.hold.lock().expect("lock");
        match hold.as_mut() {
            Some(h) if uri.path().ends_with(&h.suffix) => {
                if let Some(held) = h.held.take() {
                    let _ = held.send(());
                }
                h.release.take()
            }
            _ => None,
        }
    };
    if let Some(release) = release {
        let _ = release.await;
    }
    let upstream = *inner.upstream.lock().expect("lock");
    send(upstream, method, &uri, headers, body)
        .await
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}

async fn send(
    upstream: SocketAddr,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, reqwest::Error> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = reqwest::Client::new().request(method, format!("http://{upstream}{path}"));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await?;
    let mut out = (status, bytes).into_response();
    if let Some(ct) = content_type {
        out.headers_mut().insert("content-type", ct);
    }
    Ok(out)
}
