//! `nexus worker pull`: an agent without a socket gets its events through a local
//! command, in order, acked after the command succeeds, and again after it crashed.

use std::path::Path;
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::worker_host::{Host, output_text, wait_until};

both_profiles!(
    pull_hands_over_in_order_and_again_after_the_handler_crashed,
    a_waiting_pull_hands_over_an_event_as_it_arrives,
);

/// Saves each event it is given as `event-SEQ.json` and appends SEQ to `out`; killed
/// (by itself) the first time it is given seq 2.
fn handler(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "cat > {d}/event-$NEXUS_EVENT_SEQ.json; \
         if [ \"$NEXUS_EVENT_SEQ\" = 2 ] && [ ! -e {d}/crashed ]; then touch {d}/crashed; kill -9 $$; fi; \
         echo \"$NEXUS_EVENT_SEQ $NEXUS_EVENT_TYPE\" >> {d}/out"
    )
}

async fn emit(app: &TestApp, host: &Host, i: u64) {
    let body = json!({"type": "wake_up", "data": {"i": i}});
    let path = format!("/api/agents/{}/events", host.agent_id);
    let (status, answer) = app.post_json(&path, &host.key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

fn handled(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn pull_hands_over_in_order_and_again_after_the_handler_crashed(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    for i in 1..=3 {
        emit(&app, &host, i).await;
    }
    let exec = handler(host.dir.path());
    let pull = || {
        host.command(&app.url(""), &["pull", "--once", "--exec", &exec])
            .output()
            .expect("pull")
    };
    let first = pull();
    assert!(
        !first.status.success(),
        "the crash fails --once: {}",
        output_text(&first)
    );
    assert_eq!(
        handled(host.dir.path()),
        ["1 wake_up"],
        "{}",
        output_text(&first)
    );

    // The next run resumes after the last ack: 2 again, then 3, in order.
    let second = pull();
    assert!(second.status.success(), "{}", output_text(&second));
    assert_eq!(
        handled(host.dir.path()),
        ["1 wake_up", "2 wake_up", "3 wake_up"]
    );
    let event: Value = serde_json::from_slice(
        &std::fs::read(host.dir.path().join("event-3.json")).expect("event 3"),
    )
    .expect("the event as JSON on stdin");
    assert_eq!(
        (
            event["type"].clone(),
            event["seq"].clone(),
            event["data"].clone()
        ),
        (json!("wake_up"), json!(3), json!({"i": 3}))
    );
    let agent = host.agent_id.parse().expect("agent id");
    let cursor = app.cursor(agent, &host.key).await;
    assert_eq!(
        (cursor.last_seq, cursor.acked_seq),
        (3, 3),
        "every event acked"
    );

    let third = pull();
    assert!(third.status.success(), "{}", output_text(&third));
    assert_eq!(
        handled(host.dir.path()).len(),
        3,
        "nothing handed over twice"
    );
}

async fn a_waiting_pull_hands_over_an_event_as_it_arrives(p: Profile) {
    let app = TestApp::spawn(p).await;
    let host = Host::new(&app).await;
    std::fs::write(host.dir.path().join("crashed"), b"").expect("no crash here");
    let exec = handler(host.dir.path());
    let mut worker =
        tokio::process::Command::from(host.command(&app.url(""), &["pull", "--exec", &exec]))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pull");
    emit(&app, &host, 1).await;
    emit(&app, &host, 2).await;
    let dir = host.dir.path().to_owned();
    wait_until("both events handled", || {
        let dir = dir.clone();
        async move { handled(&dir).len() == 2 }
    })
    .await;
    worker.kill().await.expect("stop");
    assert_eq!(handled(&dir), ["1 wake_up", "2 wake_up"]);
}
