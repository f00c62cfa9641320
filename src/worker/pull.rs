//! `nexus worker pull`: an agent without a socket. Long-polls the agent's inbox
//! (`GET /api/agents/me/inbox`), hands each event to a local command (`sh -c CMD`, the
//! event's JSON on stdin) and acks it once the command exits 0. A command that fails
//! (or is killed, or runs past `--exec-timeout`) gets the same event again after a
//! backoff: nothing after it is handed over first, so delivery is in order and at
//! least once; after a restart the worker resumes after the node's last ack.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::client::{Credentials, Node};
use super::state::RetryPolicy;

pub struct PullSettings {
    pub url: String,
    pub credentials: Credentials,
    pub exec: String,
    pub exec_timeout: Duration,
    /// Seconds a poll waits for an event.
    pub wait: u32,
    pub policy: RetryPolicy,
    /// Hand over what is there, then exit (0 only if every command succeeded).
    pub once: bool,
}

#[derive(Deserialize)]
struct Page {
    events: Vec<Value>,
}

/// Runs until `stop` (or, with `once`, until the inbox is drained); true when every
/// event was handled.
pub async fn pull(s: PullSettings, stop: CancellationToken) -> anyhow::Result<bool> {
    let poll_timeout = Duration::from_secs(u64::from(s.wait) + 30);
    let node = Node::new(&s.url, s.credentials.clone(), poll_timeout)?;
    // None: after the node's last ack (where a restarted worker resumes).
    let mut after: Option<u64> = None;
    let mut failures = 0u32;
    loop {
        let wait = if s.once { 0 } else { s.wait };
        let path = match after {
            Some(seq) => format!("/api/agents/me/inbox?after_seq={seq}&wait={wait}"),
            None => format!("/api/agents/me/inbox?wait={wait}"),
        };
        let polled = tokio::select! {
            r = node.call_json::<Page>(Method::GET, &path, |r| r) => r,
            () = stop.cancelled() => return Ok(true),
        };
        let result = match polled {
            Ok(page) if page.events.is_empty() && s.once => return Ok(true),
            Ok(page) => hand_over(&s, &node, page.events, &mut after).await,
            Err(e) => Err(format!("poll failed: {e}")),
        };
        match result {
            Ok(()) => failures = 0,
            Err(why) => {
                failures += 1;
                tracing::warn!(error = why, failures, "pull: will try again");
                if s.once {
                    return Ok(false);
                }
                tokio::select! {
                    () = tokio::time::sleep(s.policy.backoff(failures)) => {}
                    () = stop.cancelled() => return Ok(true),
                }
            }
        }
    }
}

/// Runs the command for each event in order, acking each; stops at the first failure.
async fn hand_over(
    s: &PullSettings,
    node: &Node,
    events: Vec<Value>,
    after: &mut Option<u64>,
) -> Result<(), String> {
    for event in events {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "gap" {
            tracing::warn!(gap = %event["data"], "pull: events were lost to retention before they were pulled");
            continue;
        }
        let seq = event
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("the node sent an event without a seq: {event}"))?;
        run_command(s, kind, seq, &event).await?;
        let ack = json!({ "seq": seq });
        node.call(Method::POST, "/api/agents/me/ack", |r| r.json(&ack))
            .await
            .map_err(|e| format!("ack of {seq} failed (the event will come again): {e}"))?;
        tracing::info!(seq, r#type = kind, "pull: event handled");
        *after = Some(seq);
    }
    Ok(())
}

async fn run_command(s: &PullSettings, kind: &str, seq: u64, event: &Value) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&s.exec)
        .env("NEXUS_EVENT_TYPE", kind)
        .env("NEXUS_EVENT_SEQ", seq.to_string())
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", s.exec))?;
    let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    line.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is its own business: only its exit counts.
        let _ = stdin.write_all(&line).await;
    }
    match tokio::time::timeout(s.exec_timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the command for event {seq} ended with {status}")),
        Ok(Err(e)) => Err(format!("the command for event {seq}: {e}")),
        Err(_) => Err(format!(
            "the command for event {seq} ran past {:?} and was killed",
            s.exec_timeout
        )),
    }
}
