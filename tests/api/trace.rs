//! One webhook's trace id in the JSON logs (debug), from acceptance to the agent's ack.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::{connect_at, event};
use crate::helpers::request_token;
use crate::serve::{cli, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhooks_trace_id_follows_it_to_the_agents_ack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();
    let node = start(dir.path()).await;
    let tenant = cli(dir.path(), &["tenant", "create", "--name", "acme"]);
    let t = tenant["id"].as_str().expect("id");
    let agent = cli(
        dir.path(),
        &["agent", "create", "--tenant", t, "--name", "bot"],
    );
    let agent_id = agent["id"].as_str().expect("id");
    let source = cli(
        dir.path(),
        &[
            "source",
            "add",
            "--tenant",
            t,
            "--kind",
            "ingest",
            "--name",
            "putio",
            "--secret",
            "ingest-secret",
            "--to-agent",
            agent_id,
        ],
    );
    let token: Value = request_token(
        &http,
        &node.addr,
        agent["client_id"].as_str().expect("client_id"),
        agent["client_secret"].as_str().expect("secret"),
    )
    .await
    .json()
    .await
    .expect("token");
    let token = token["access_token"].as_str().expect("access_token");
    let mut ws = connect_at(&node.addr, Some(token), "", &[])
        .await
        .expect("connect");
    ws.welcome().await;

    let request_id = uuid::Uuid::new_v4();
    let trace_id = request_id.simple().to_string();
    let url_path = source["url_path"].as_str().expect("url_path");
    let resp = http
        .post(format!("http://{}{url_path}", node.addr))
        .bearer_auth("ingest-secret")
        .header("x-request-id", request_id.to_string())
        .json(&json!({"file": "report.pdf"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let msg = ws.recv().await;
    let (_, seq, _, _) = event(&msg);
    let frame = serde_json::to_value(&msg).expect("frame");
    assert_eq!(frame["trace_id"], trace_id.as_str(), "the event carries it");
    ws.send(json!({"type": "ack", "data": {"seq": seq}})).await;
    // Frames are handled in order: the answer to this one means the ack was handled.
    ws.send(json!({"type": "no_such_frame", "id": "sync"}))
        .await;
    let answer = serde_json::to_value(ws.recv().await).expect("frame");
    assert_eq!(answer["data"]["ref"], "sync");
    let logs = node.stop().await;

    let traced: Vec<Value> = logs
        .iter()
        .filter(|l| l.contains(&trace_id))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said = |message: &str| traced.iter().any(|l| l["message"] == message);
    for step in ["webhook stored", "job done", "event sent", "event acked"] {
        assert!(
            said(step),
            "no {step:?} line with the trace id in:\n{traced:#?}"
        );
    }
    let acked = traced
        .iter()
        .find(|l| l["message"] == "event acked")
        .expect("acked");
    assert_eq!(acked["agent_id"], agent_id);
    assert_eq!(acked["seq"], seq);
}
