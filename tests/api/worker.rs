//! `nexus worker run`, the built binary against a real node: backfill of a directory of
//! sessions, no re-upload after a restart, usage summed from Claude Code's JSONL, a
//! 5 MB session in parts, the node killed mid-upload.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::http_gate::Gate;
use crate::worker_host::{Host, big_session, claude_session, output_text, wait_until, write};

both_profiles!(
    backfill_uploads_every_session_once_and_a_restart_uploads_nothing_again,
    a_5_mb_session_goes_up_in_parts_and_reads_back_byte_for_byte,
    the_node_killed_mid_upload_and_back_stores_the_session_once,
);

async fn backfill_uploads_every_session_once_and_a_restart_uploads_nothing_again(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    let ids = [
        "0b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f",
        "1b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f",
        "2b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f",
    ];
    for (i, id) in ids.iter().enumerate() {
        let path = host.sessions().join(format!("app{i}/{id}.jsonl"));
        write(&path, claude_session(id, "2026-11-30").as_bytes());
    }
    // Not named by a UUID: its id is derived from the host and the path.
    write(
        &host.sessions().join("notes.jsonl"),
        b"{\"timestamp\":\"2026-11-29T08:00:00Z\"}\n",
    );

    let out = host.run_once(&app.url(""), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("backfill: uploading existing sessions"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("session uploaded").count(), 4, "{stdout}");

    let sessions = host.uploaded(&app).await;
    assert_eq!(sessions.len(), 4);
    let first = sessions
        .iter()
        .find(|s| s["id"] == ids[0])
        .expect("named by its file");
    assert_eq!(first["source"], "claude-code");
    assert_eq!(first["started_at"], "2026-11-30T10:00:00.000Z");
    assert_eq!(first["ended_at"], "2026-11-30T10:02:00.000Z");
    let usage: Vec<_> = first["usage"]
        .as_array()
        .expect("usage")
        .iter()
        .map(|u| {
            (
                u["model"].clone(),
                u["input_tokens"].clone(),
                u["output_tokens"].clone(),
                u["cache_read_tokens"].clone(),
                u["cache_write_tokens"].clone(),
            )
        })
        .collect();
    assert!(
        usage.contains(&(
            json!("claude-sonnet-4-5"),
            json!(100),
            json!(20),
            json!(1000),
            json!(50)
        )),
        "one response counted once: {usage:?}"
    );
    assert!(
        usage.contains(&(
            json!("claude-haiku-4-5"),
            json!(7),
            json!(3),
            json!(0),
            json!(0)
        )),
        "{usage:?}"
    );
    let transcript = host.transcript(&app, ids[0]).await;
    assert_eq!(transcript, claude_session(ids[0], "2026-11-30").as_bytes());

    let status = host.status();
    assert_eq!(
        (status["uploaded"].clone(), status["backfill_done"].clone()),
        (json!(4), json!(true))
    );
    assert_eq!(
        (status["queued"].clone(), status["parked"].clone()),
        (json!(0), json!(0))
    );

    // A restart: the state file says what went up; nothing is sent again.
    let again = host.run_once(&app.url(""), &[]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("session uploaded"),
        "{}",
        output_text(&again)
    );
    // Without the state file every upload meets 409, which counts as done: still 4.
    std::fs::remove_file(host.state()).expect("forget the state");
    let fresh = host.run_once(&app.url(""), &[]);
    assert!(fresh.status.success(), "{}", output_text(&fresh));
    assert_eq!(host.uploaded(&app).await.len(), 4);
}

async fn a_5_mb_session_goes_up_in_parts_and_reads_back_byte_for_byte(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    let id = "3b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f";
    let body = big_session();
    write(&host.sessions().join(format!("{id}.jsonl")), &body);
    let out = host.run_once(&app.url(""), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let shown = app
        .get_json(&format!("/api/sessions/{id}"), &host.key)
        .await;
    assert_eq!(shown["parts"], 6, "{shown}");
    assert_eq!(shown["transcript_bytes"], body.len());
    let back = host.transcript(&app, id).await;
    assert!(
        back == body,
        "the transcript differs ({} bytes back of {})",
        back.len(),
        body.len()
    );
}

async fn the_node_killed_mid_upload_and_back_stores_the_session_once(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    let id = "4b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f";
    let body = big_session();
    write(&host.sessions().join(format!("{id}.jsonl")), &body);
    let gate = Gate::start(app.addr).await;
    let (held, release) = gate.hold("/parts/3");
    let glob = format!("{}/*.jsonl", host.sessions().display());
    let mut worker = tokio::process::Command::from(host.command(
        &gate.url(),
        &[
            "run",
            "--sessions",
            &glob,
            "--quiet-period",
            "0s",
            "--scan-interval",
            "200ms",
            "--retry-base",
            "100ms",
            "--retry-cap",
            "500ms",
            "--max-attempts",
            "100",
        ],
    ));
    let mut worker = worker
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker");
    tokio::time::timeout(Duration::from_secs(60), held)
        .await
        .expect("part 3 sent")
        .expect("held");

    // Two parts are in when the node goes down; part 3 then meets a dead node.
    let db = app.stop().await;
    drop(release);
    let app = TestApp::spawn_on(db, |_| {}).await;
    gate.retarget(app.addr);
    let key = host.key.clone();
    wait_until("the session to be complete", || {
        let (app, key) = (&app, key.clone());
        async move {
            let r = app
                .http
                .get(app.url(&format!("/api/sessions/{id}")))
                .bearer_auth(&key)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|s| s["status"] == "complete"),
                _ => false,
            }
        }
    })
    .await;
    worker.kill().await.expect("stop the worker");
    assert_eq!(host.uploaded(&app).await.len(), 1, "stored once");
    let back = host.transcript(&app, id).await;
    assert!(back == body, "the transcript differs");
    let seen = gate.seen();
    assert!(
        seen.iter().filter(|r| *r == "POST /api/sessions").count() >= 2,
        "{seen:?}"
    );
}
