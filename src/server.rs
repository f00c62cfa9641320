//! The accept loop: HTTP/1.1 connections driven through hyper directly, because
//! `axum::serve` exposes none of the limits a public listener needs — a cap on open
//! connections, and deadlines for a request's headers, its body and the idle time
//! between requests, so slow or silent clients cannot hold sockets or shutdown.
//!
//! One small state per connection, shared by its socket, its requests and its task:
//! the task sleeps until the deadline of what the connection is doing and closes it
//! when that passes (Go's `net/http` draws the same lines).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpOpts;
use crate::http::ApiError;
use crate::telemetry::catalog;

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Io(#[from] hyper::Error),
}

/// Serves `router` on `listener` until `shutdown`, then waits for the requests in
/// flight (idle and half-sent ones are closed at once). Agent sockets outlive this:
/// their sessions close on the same signal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpOpts,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let connections = TaskTracker::new();
    let refusal = refusal();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &shutdown).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!(catalog::CONNECTIONS_REFUSED).increment(1);
            // A fresh socket's send buffer takes it whole; a client that cannot read
            // it still sees the connection close.
            let _ = stream.try_write(&refusal);
            continue;
        };
        let conn = Arc::new(Conn::new());
        let io = Io {
            stream,
            conn: conn.clone(),
            _slot: Slot::new(permit),
        };
        let task = drive(
            io,
            peer,
            conn,
            router.clone(),
            limits.clone(),
            shutdown.clone(),
        );
        connections.spawn(task);
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Resource errors (out of file descriptors) last a while: wait before retrying
/// rather than spin. A client giving up during the handshake is no error of ours.
async fn accept_failed(e: io::Error, shutdown: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in 1 s");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// The whole answer to a connection over the cap, written before closing it.
fn refusal() -> Vec<u8> {
    let body = r#"{"error":{"code":"unavailable","message":"too many connections; retry later"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one connection until it ends, is upgraded (the agent socket then lives on
/// in its session), overstays its phase's deadline, or shutdown closes it.
async fn drive(
    io: Io,
    peer: SocketAddr,
    conn: Arc<Conn>,
    router: Router,
    limits: HttpOpts,
    shutdown: CancellationToken,
) {
    let service = {
        let (conn, body_timeout) = (conn.clone(), limits.body_read_timeout);
        hyper::service::service_fn(move |req| {
            respond(req, peer, router.clone(), conn.clone(), body_timeout)
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut served = pin!(served);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&limits);
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // Out of a request: a deadline starts.
            _ = conn.idle.notified() => {}
            _ = expiry => {
                if let Some(phase) = conn.expired(&limits) {
                    if phase == HEAD {
                        metrics::counter!(catalog::HTTP_TIMEOUTS, "phase" => "header")
                            .increment(1);
                    }
                    // Nothing is in flight: dropping the connection closes the socket.
                    return;
                }
            }
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                if conn.phase() != BUSY {
                    return;
                }
                // Finish the request in flight, then close.
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One request: its body under a deadline, a 408 if that passed, and the connection
/// marked idle once the response is written.
async fn respond(
    req: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    conn: Arc<Conn>,
    body_timeout: Duration,
) -> Result<Response<Body>, Infallible> {
    conn.set(BUSY);
    let (mut parts, body) = req.into_parts();
    // What `into_make_service_with_connect_info` would give: handlers throttle by it.
    parts.extensions.insert(ConnectInfo(peer));
    let body = DeadlineBody {
        inner: body,
        limit: body_timeout,
        deadline: Instant::now() + body_timeout,
        sleep: None,
        conn: conn.clone(),
    };
    let response = match router
        .oneshot(Request::from_parts(parts, Body::new(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let response = if conn.body_timed_out.swap(false, Ordering::Relaxed) {
        body_timeout_response(response, body_timeout)
    } else {
        response
    };
    Ok(response.map(|inner| Body::new(Written { inner, conn })))
}

/// However the handler answered a body that stopped arriving, the client is told why.
fn body_timeout_response(handled: Response<Body>, limit: Duration) -> Response<Body> {
    metrics::counter!(catalog::HTTP_TIMEOUTS, "phase" => "body").increment(1);
    let message = format!(
        "the request body did not arrive within {}",
        humantime::format_duration(limit)
    );
    let mut response =
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response();
    let headers = response.headers_mut();
    // The rest of the body may still come: the connection cannot be reused.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(id) = handled.headers().get("x-request-id") {
        headers.insert("x-request-id", id.clone());
    }
    response
}

/// Reading the request line and headers: deadline `--header-read-timeout`.
const HEAD: u64 = 0;
/// A request is being handled: its body has its own deadline, the handler none.
const BUSY: u64 = 1;
/// Between requests: deadline `--keep-alive-timeout`.
const IDLE: u64 = 2;

/// What a connection is doing, and since when.
struct Conn {
    opened: Instant,
    /// The phase in the low two bits, the milliseconds from `opened` to its start
    /// above them: one word, so the pair is never read half-updated.
    state: AtomicU64,
    body_timed_out: AtomicBool,
    /// Woken when a request ends: the connection's task then has a deadline again.
    idle: Notify,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            opened: Instant::now(),
            state: AtomicU64::new(HEAD),
            body_timed_out: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }

    fn phase(&self) -> u64 {
        self.state.load(Ordering::Acquire) & 0b11
    }

    fn set(&self, phase: u64) {
        let since = self.opened.elapsed().as_millis() as u64;
        self.state.store(since << 2 | phase, Ordering::Release);
    }

    /// Bytes arrived: after an idle spell they start the next request's headers.
    fn on_bytes(&self) {
        let state = self.state.load(Ordering::Acquire);
        if state & 0b11 == IDLE {
            let since = self.opened.elapsed().as_millis() as u64;
            let _ = self.state.compare_exchange(
                state,
                since << 2 | HEAD,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn deadline(&self, limits: &HttpOpts) -> Option<Instant> {
        let state = self.state.load(Ordering::Acquire);
        let since = self.opened + Duration::from_millis(state >> 2);
        match state & 0b11 {
            HEAD => Some(since + limits.header_read_timeout),
            IDLE => Some(since + limits.keep_alive_timeout),
            _ => None,
        }
    }

    /// The phase overstayed, if one did.
    fn expired(&self, limits: &HttpOpts) -> Option<u64> {
        let phase = self.phase();
        self.deadline(limits)
            .filter(|at| *at <= Instant::now())
            .map(|_| phase)
    }
}

/// A place under `--max-connections`, held as long as the socket: by an agent's
/// session too, after the upgrade.
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Slot {
        metrics::gauge!(catalog::CONNECTIONS_OPEN).increment(1.0);
        Slot { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(catalog::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// The socket, telling its connection when bytes arrive.
struct Io {
    stream: TcpStream,
    conn: Arc<Conn>,
    _slot: Slot,
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.conn.on_bytes();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole by a deadline.
struct DeadlineBody {
    inner: Incoming,
    limit: Duration,
    deadline: Instant,
    /// Made only when the body makes us wait: most arrive with their headers.
    sleep: Option<Pin<Box<Sleep>>>,
    conn: Arc<Conn>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.conn.body_timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(BodyError::Timeout(this.limit))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks its connection idle once hyper is done with it.
struct Written {
    inner: Body,
    conn: Arc<Conn>,
}

impl hyper::body::Body for Written {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.conn.set(IDLE);
        self.conn.idle.notify_one();
    }
}
