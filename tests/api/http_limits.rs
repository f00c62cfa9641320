//! The listener's limits as an attacker or a stalled client meets them: connections
//! trickling header bytes (slowloris), a body that stops arriving, more connections
//! than the cap, an agent upgrade the database cannot authorize in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::helpers::{Profile, TestApp};
use crate::postgres_profile;
use crate::webhook_support::*;

/// A guard against hangs, never a measure: every wait below ends on an observable event.
const PATIENCE: Duration = Duration::from_secs(20);
const TRICKLERS: usize = 2_000;

/// Opens `n` connections that each send a request's first bytes one at a time and
/// never finish its headers. Resolves once all are connected; each task ends when
/// the server closes its connection, counted in `closed`.
async fn trickle(addr: SocketAddr, n: usize, closed: Arc<AtomicUsize>) -> JoinSet<()> {
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (connected, closed) = (connected.clone(), closed.clone());
        tasks.spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            connected.add_permits(1);
            let (mut rd, mut wr) = stream.into_split();
            let head = b"GET /health HTTP/1.1\r\nHost: nexus\r\nX-Slow: ";
            let mut bytes = head.iter().chain(std::iter::repeat(&b'a'));
            let mut tick = tokio::time::interval(Duration::from_millis(300));
            let mut buf = [0u8; 512];
            loop {
                tokio::select! {
                    read = rd.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = tick.tick() => {
                        let byte = *bytes.next().expect("endless");
                        if wr.write_all(&[byte]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    let all = connected.acquire_many(n as u32);
    tokio::time::timeout(PATIENCE, all)
        .await
        .expect("trickling connections did not connect")
        .expect("semaphore")
        .forget();
    tasks
}

/// Waits (bounded) until every trickling connection saw the server close it.
async fn all_closed(mut tasks: JoinSet<()>) {
    tokio::time::timeout(PATIENCE, async {
        while let Some(done) = tasks.join_next().await {
            done.expect("trickler");
        }
    })
    .await
    .expect("the server left trickling connections open");
}

/// `/health`, a token and a signed webhook, each answered as usual.
async fn node_answers(app: &TestApp) {
    let health = app.http.get(app.url("/health")).send().await.expect("send");
    assert_eq!(health.status(), StatusCode::OK);
    let t = app.tenant("acme").await;
    let agent = app.agent(t.id, "bot").await;
    let token = app
        .token_response(&agent.agent.client_id, &agent.client_secret)
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    app.slack_source(t.id, "T001").await;
    let body = slack_event("Ev001", "T001");
    let (status, resp) = app
        .post_slack("/webhooks/slack", &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_headers_are_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(Profile::Sqlite, |c| {
        c.serve.http.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let closed = Arc::new(AtomicUsize::new(0));
    let tasks = trickle(app.addr, TRICKLERS, closed.clone()).await;
    all_closed(tasks).await;
    // Closing them cost the node nothing.
    node_answers(&app).await;
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_headers_neither_stop_answers_nor_hold_shutdown() {
    // Far beyond the test: only shutdown can close the trickling connections here.
    let app = TestApp::spawn_with(Profile::Sqlite, |c| {
        c.serve.http.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let closed = Arc::new(AtomicUsize::new(0));
    let tasks = trickle(app.addr, TRICKLERS, closed.clone()).await;
    node_answers(&app).await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "answered while every trickling connection was open"
    );
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown waited for trickling connections");
    all_closed(tasks).await;
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A connection refused before the request went out still has its answer to read.
    let _ = stream.write_all(request).await;
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        // A reset after the answer still leaves the answer read.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("the server neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_408_and_closed() {
    let app = TestApp::spawn_with(Profile::Sqlite, |c| {
        c.serve.http.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = "POST /webhooks/slack HTTP/1.1\r\nHost: nexus\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(b"{\"type\":\"e").await.expect("10 bytes");
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(answer.contains("x-request-id"), "{answer}");
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown hung");
}

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: nexus\r\n\r\n";

/// A kept-alive connection that got one answer, so the server holds it.
async fn held(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(GET_HEALTH).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with(r#"{"status":"ok"}"#) {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no answer")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlasts_the_header_timeout_then_ends() {
    let app = TestApp::spawn_with(Profile::Sqlite, |c| {
        c.serve.http.header_read_timeout = Duration::from_secs(1);
        c.serve.http.keep_alive_timeout = Duration::from_secs(3);
    })
    .await;
    let mut idle = held(app.addr).await;
    // The clock: a connection opened after `idle` went idle, closed by the header timeout.
    let closed = Arc::new(AtomicUsize::new(0));
    all_closed(trickle(app.addr, 1, closed).await).await;
    // Idle between requests is not a slow request: `idle` still serves the next one.
    idle.write_all(GET_HEALTH).await.expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(PATIENCE, idle.read(&mut buf))
        .await
        .expect("no answer")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // Then, left idle past --keep-alive-timeout, it is closed.
    let rest = read_to_close(&mut idle).await;
    assert!(!rest.contains("HTTP/1.1"), "{rest}");
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown hung");
}

fn refused_count(metrics: &str) -> f64 {
    let body = metrics.split("\r\n\r\n").nth(1).unwrap_or(metrics);
    body.lines()
        .find_map(|l| l.strip_prefix("nexus_connections_refused_total "))
        .map_or(0.0, |n| n.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_503_and_counted() {
    let app = TestApp::spawn_with(Profile::Sqlite, |c| {
        c.serve.http.max_connections = 50;
    })
    .await;
    let metrics = b"GET /metrics HTTP/1.1\r\nHost: nexus\r\nConnection: close\r\n\r\n";
    let before = refused_count(&exchange(app.addr, metrics).await);
    let mut open = Vec::new();
    for _ in 0..50 {
        open.push(held(app.addr).await);
    }

    let mut extra = TcpStream::connect(app.addr).await.expect("connect");
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"unavailable""#), "{answer}");

    // Closing some makes room again (once the server has seen them go).
    open.truncate(40);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let answer = exchange(app.addr, metrics).await;
        if answer.starts_with("HTTP/1.1 200") {
            break refused_count(&answer);
        }
        assert!(tokio::time::Instant::now() < deadline, "no room: {answer}");
        tokio::task::yield_now().await;
    };
    assert!(after > before, "refusals counted: {before} → {after}");
    drop(open);
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown hung");
}

postgres_profile!(an_upgrade_the_database_cannot_authorize_in_time_is_503);

async fn an_upgrade_the_database_cannot_authorize_in_time_is_503() {
    let app = TestApp::spawn_with(Profile::Postgres, |c| {
        c.serve.ws.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let t = app.tenant("acme").await;
    let agent = app.agent(t.id, "bot").await;
    let token = app.token_for(agent.agent.id, t.id);
    // Another client holds the agents table: the upgrade's agent read waits on it.
    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("connect");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .expect("lock");
    let refused = tokio::time::timeout(PATIENCE, app.connect(&token, ""))
        .await
        .expect("the upgrade hung on the database")
        .expect_err("refused");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.body["error"]["code"], "unavailable");
    tx.rollback().await.expect("unlock");
    pool.close().await;
    // Once the database answers, the same agent connects.
    app.online(&agent, t.id).await;
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown hung");
}
