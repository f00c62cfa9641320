//! A node killed with SIGKILL while ~1,000 webhooks/s stream in, ten times over: every
//! webhook that got a 2xx reaches its agent after the restarts, and none twice.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nexus_proto::{AgentId, Seq};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::both_profiles;
use crate::cli::{json_lines, nexus};
use crate::helpers::{Profile, TestDb};

both_profiles!(sigkill_under_webhook_load_loses_and_repeats_nothing);

const TOKEN: &str = "crash-test-ingest-token";
const ROUNDS: usize = 10;
/// Webhooks offered per second (open loop: one request per tick, however slow the answers).
const RATE: u64 = 1_000;
/// Requests in flight at most (senders' sockets are bounded; a slower node gets fewer/s).
const IN_FLIGHT: usize = 64;
/// Acknowledged webhooks after which a round's node is killed.
const ACKED_PER_ROUND: usize = 200;

type Acked = Arc<Mutex<HashSet<String>>>;

async fn sigkill_under_webhook_load_loses_and_repeats_nothing(p: Profile) {
    let db = TestDb::new(p).await;
    let tenant = json_lines(&nexus(&db, &["tenant", "create", "--name", "acme"]))[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let agent = json_lines(&nexus(
        &db,
        &["agent", "create", "--tenant", &tenant, "--name", "bot"],
    ))[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let source = json_lines(&nexus(
        &db,
        &[
            "source",
            "add",
            "--tenant",
            &tenant,
            "--kind",
            "ingest",
            "--name",
            "putio",
            "--secret",
            TOKEN,
            "--to-agent",
            &agent,
        ],
    ))[0]
        .clone();
    let url_path = source["url_path"].as_str().expect("url_path").to_owned();

    let acked: Acked = Arc::default();
    let started = std::time::Instant::now();
    let mut streaming = Duration::ZERO;
    for round in 0..ROUNDS {
        let (node, addr) = spawn_serve(&db.url, &[]).await;
        let t = std::time::Instant::now();
        stream_until_killed(node, format!("http://{addr}{url_path}"), round, &acked).await;
        streaming += t.elapsed();
    }
    let acked = acked.lock().expect("acked").clone();
    // A figure for the record (`--nocapture`), not a threshold.
    eprintln!(
        "{ROUNDS} kills: {} webhooks acknowledged in {streaming:.1?} of streaming ({:.0}/s), {:.1?} in all",
        acked.len(),
        acked.len() as f64 / streaming.as_secs_f64(),
        started.elapsed()
    );
    assert!(acked.len() >= ROUNDS * ACKED_PER_ROUND);

    // A last node runs what the killed ones left; the agent's inbox is read from storage.
    let (_node, _) = spawn_serve(&db.url, &[]).await;
    let store = nexus::store::Store::connect(&db.url).await.expect("reopen");
    let agent: AgentId = agent.parse().expect("agent id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let delivered = transfers_in_inbox(&store, agent).await;
        if acked.iter().all(|k| delivered.contains_key(k)) {
            break delivered;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged webhooks never reached the agent",
            acked.iter().filter(|k| !delivered.contains_key(*k)).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    store.close().await;
}

/// Offers webhooks at [`RATE`] until [`ACKED_PER_ROUND`] were answered 2xx, then kills
/// the node with SIGKILL mid-stream; what was acknowledged is added to `acked`.
async fn stream_until_killed(mut node: Child, url: String, round: usize, acked: &Acked) {
    let enough = Arc::new(Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::new();
    let sender = {
        let (acked, enough, killed) = (acked.clone(), enough.clone(), killed.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
            let mut sends = JoinSet::new();
            let in_round = Arc::new(Mutex::new(0usize));
            let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            for i in 0.. {
                tick.tick().await;
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                if killed.load(Ordering::SeqCst) {
                    break;
                }
                let key = format!("r{round}-{i}");
                let (http, url, acked, enough) =
                    (http.clone(), url.clone(), acked.clone(), enough.clone());
                let count = in_round.clone();
                sends.spawn(async move {
                    let _slot = slot;
                    let sent = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("idempotency-key", &key)
                        .body(format!("{{\"transfer\":\"{key}\"}}"))
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        acked.lock().expect("acked").insert(key);
                        let mut n = count.lock().expect("count");
                        *n += 1;
                        if *n == ACKED_PER_ROUND {
                            enough.notify_one();
                        }
                    }
                });
            }
            while sends.join_next().await.is_some() {}
        })
    };
    enough.notified().await;
    node.start_kill().expect("SIGKILL");
    node.wait().await.expect("wait");
    killed.store(true, Ordering::SeqCst);
    sender.await.expect("sender");
}

/// How many times each transfer key is in the agent's inbox.
async fn transfers_in_inbox(store: &nexus::store::Store, agent: AgentId) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let mut after = Seq::new(0);
    loop {
        let page = store.read_inbox(agent, after, 1_000).await.expect("inbox");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let data: Value = serde_json::from_str(&e.data).expect("event data");
            let key = data["payload"]["transfer"]
                .as_str()
                .expect("transfer")
                .to_owned();
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    seen
}

/// `nexus serve` as a child process on `db_url` (plus `env`), killed on drop; its
/// listening address once it logs it.
pub async fn spawn_serve(db_url: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut node = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", db_url)
        .envs(crate::helpers::secrets_key(db_url).map(|k| ("NEXUS_SECRETS_KEY", k)))
        .env("NEXUS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(node.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("node exited before listening");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "nexus listening"
        {
            break v["addr"].as_str().expect("addr").to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (node, addr)
}
