//! `nexus worker` when things go wrong, and what it says: a failing session parked and
//! reported, the journal's line format, `check` on missing paths and bad credentials.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::alerts_api::receiver;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::http_gate::Gate;
use crate::worker_host::{Host, claude_session, output_text, write};

both_profiles!(a_session_that_keeps_failing_is_parked_and_reported);

async fn a_session_that_keeps_failing_is_parked_and_reported(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    // A node that cannot be reached costs no session an attempt.
    write(&host.sessions().join("early.jsonl"), b"{}\n");
    let out = host.run_once("http://127.0.0.1:1", &[]);
    assert!(!out.status.success(), "{}", output_text(&out));
    let status = host.status();
    assert_eq!(
        (status["failing"].clone(), status["parked"].clone()),
        (json!(0), json!(0)),
        "{status}"
    );
    assert_eq!(status["consecutive_failures"], 1, "{status}");
    std::fs::remove_file(host.sessions().join("early.jsonl")).expect("rm");
    // Refused for good by the node: it ends three days from now.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let refused = "5b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f";
    write(
        &host.sessions().join(format!("{refused}.jsonl")),
        claude_session(refused, &ahead).as_bytes(),
    );
    // Two failures in a row (the unreachable node, then this) make the node alert.
    let (hook, mut received) = receiver().await;
    let admin = app.operator_key("admin", None).await;
    let alert = json!({"tenant_id": host.tenant_id, "period": "day", "threshold_usd": 100.0, "webhook_url": hook});
    let (made, answer) = app.post_json("/api/alerts", &admin, alert).await;
    assert_eq!(made, StatusCode::CREATED, "{answer}");
    let out = host.run_once(&app.url(""), &["--alert-after", "2"]);
    assert!(
        !out.status.success(),
        "a failed upload fails --once: {}",
        output_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("session parked"),
        "{}",
        output_text(&out)
    );
    let status = host.status();
    assert_eq!(status["parked"], 1, "{status}");
    let failure = &status["failures"][0];
    assert_eq!(
        (failure["attempts"].clone(), failure["parked"].clone()),
        (json!(1), json!(true))
    );
    assert!(
        failure["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("400") && e.contains("started_at")),
        "{failure}"
    );

    let (_, raw) = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("the alert in time")
        .expect("received");
    let sent: Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(
        (sent["type"].clone(), sent["consecutive_failures"].clone()),
        (json!("worker_failing"), json!(2)),
        "{sent}"
    );
    assert!(
        sent["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("started_at")),
        "{sent}"
    );
    let workers = app
        .get_json(&format!("/api/workers?agent={}", host.agent_id), &host.key)
        .await;
    let worker = &workers["workers"][0];
    assert_eq!(
        (worker["parked"].clone(), worker["stale"].clone()),
        (json!(1), json!(false)),
        "{workers}"
    );
    assert_eq!(worker["host"], sent["host"]);

    // One the node keeps failing (503 from in front of it) is retried, then parked.
    let failing = "6b0c1c8e-7a39-4c55-9d6a-1d2b3c4d5e6f";
    write(
        &host.sessions().join(format!("{failing}.jsonl")),
        claude_session(failing, "2026-11-30").as_bytes(),
    );
    let gate = Gate::start(app.addr).await;
    gate.fail_with("/api/sessions", Some(StatusCode::SERVICE_UNAVAILABLE));
    let tries = [
        "--max-attempts",
        "2",
        "--retry-base",
        "1ms",
        "--retry-cap",
        "1ms",
    ];
    for attempt in 1..=2 {
        let out = host.run_once(&gate.url(), &tries);
        assert!(
            !out.status.success(),
            "attempt {attempt}: {}",
            output_text(&out)
        );
    }
    let status = host.status();
    assert_eq!(status["parked"], 2, "{status}");
    let before = gate.seen().len();
    let out = host.run_once(&gate.url(), &tries);
    assert!(
        out.status.success(),
        "parked sessions are not tried: {}",
        output_text(&out)
    );
    assert!(
        !gate.seen()[before..]
            .iter()
            .any(|r| r.contains("/api/sessions")),
        "parked: not tried again"
    );
    // Until asked to: the node is fine now.
    gate.fail_with("", None);
    let out = host.run_once(&gate.url(), &["--retry-parked"]);
    assert!(
        !out.status.success(),
        "the refused one fails again: {}",
        output_text(&out)
    );
    let sessions = host.uploaded(&app).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], failing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_each_line_carries_its_level_and_no_timestamp() {
    let app = TestApp::spawn(Profile::Sqlite).await;
    let host = Host::new(&app).await;
    write(&host.sessions().join("a.jsonl"), b"{}\n");
    let glob = format!("{}/*.jsonl", host.sessions().display());
    let args = ["run", "--once", "--sessions", &glob, "--quiet-period", "0s"];
    let journal = host
        .command("http://127.0.0.1:1", &args)
        .env("JOURNAL_STREAM", "8:1234")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&journal.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("<6>worker starting")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>the node cannot be reached")),
        "{text}"
    );
    let year = chrono::Utc::now().format("%Y-").to_string();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('<') && !l.contains(&year)),
        "no timestamps: {text}"
    );

    let plain = host
        .command("http://127.0.0.1:1", &args)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.lines().all(|l| l.starts_with(&year)),
        "timestamped off systemd: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_which_paths_and_node_can_be_reached() {
    let app = TestApp::spawn(Profile::Sqlite).await;
    let host = Host::new(&app).await;
    write(&host.sessions().join("p/done.jsonl"), b"{}\n");
    write(&host.sessions().join("p/done.jsonl.done"), b"");
    write(&host.sessions().join("p/live.jsonl"), b"{}\n");
    let good = format!("{}/**/*.jsonl", host.sessions().display());
    let missing = format!("{}/sandbox/**/*.jsonl", host.dir.path().display());
    let check = |url: &str| {
        host.command(
            url,
            &[
                "check",
                "--json",
                "--sessions",
                &good,
                "--sessions",
                &missing,
            ],
        )
        .output()
        .expect("check")
    };
    let out = check(&app.url(""));
    assert!(
        !out.status.success(),
        "a missing path fails check: {}",
        output_text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let paths = report["paths"].as_array().expect("paths");
    assert_eq!(
        (paths[0]["readable"].clone(), paths[0]["sessions"].clone()),
        (json!(true), json!(2)),
        "{report}"
    );
    assert_eq!(
        (paths[0]["finished"].clone(), paths[0]["active"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(paths[1]["readable"], false);
    assert!(
        paths[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No such file")),
        "{report}"
    );
    assert_eq!(
        (
            report["node"]["ok"].clone(),
            report["state_file"]["writable"].clone()
        ),
        (json!(true), json!(true))
    );

    let wrong = host
        .command(&app.url(""), &["check", "--sessions", &good])
        .env("NEXUS_CLIENT_SECRET", "not-the-secret")
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&wrong.stdout);
    assert!(
        !wrong.status.success() && text.contains("invalid_client"),
        "{text}"
    );
    assert!(
        text.contains("readable, 2 sessions (1 finished, 1 being written)"),
        "{text}"
    );
}
