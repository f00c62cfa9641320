//! `nexus mcp` driven by a real MCP client (rmcp's, over the child's stdio) as agent
//! alice: the tools it lists, a task assigned through ClickUp as an event and a
//! resource (with its update notification), an event emitted through the operator
//! API, a tool call reaching the fake Slack and ClickUp, status, who is online, acks.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientConfig, JsonObject, ProtocolVersion, ReadResourceRequestParams,
    ResourceContents, ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::setup;
use crate::both_profiles;
use crate::helpers::Profile;

both_profiles!(an_mcp_client_is_a_nexus_agent);

/// Records the resources the server says changed.
struct Client {
    updated: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.protocol_version = ProtocolVersion::V_2025_11_25;
        info
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let _ = self.updated.send(params.uri);
    }
}

/// Calls `name` and returns its text content as JSON (or the error text).
async fn call(mcp: &RunningService<RoleClient, Client>, name: &str, args: Value) -> (bool, Value) {
    let args: JsonObject = serde_json::from_value(args).expect("an object");
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
    let result = mcp.call_tool(params).await.expect("tools/call");
    let text = result.content[0].as_text().expect("text").text.clone();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (result.is_error != Some(true), value)
}

async fn an_mcp_client_is_a_nexus_agent(p: Profile) {
    let mut m = setup(p).await;
    let thread = m.task_created().await;
    let (tx, mut updated) = mpsc::unbounded_channel();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nexus"));
    cmd.arg("mcp")
        .env("NEXUS_URL", m.app.url(""))
        .env("NEXUS_CLIENT_ID", &m.alice.agent.client_id)
        .env("NEXUS_CLIENT_SECRET", &m.alice.client_secret)
        .env_remove("RUST_LOG");
    let transport = TokioChildProcess::new(cmd).expect("spawn nexus mcp");
    let mcp = Client { updated: tx }
        .serve(transport)
        .await
        .expect("initialize");

    let tools = mcp.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in [
        "nexus_next_events",
        "nexus_ack",
        "nexus_set_status",
        "nexus_online_agents",
        "slack_post_message",
        "task_reply",
        "clickup_create_comment",
        "clickup_update_status",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let post = tools
        .iter()
        .find(|t| t.name == "slack_post_message")
        .expect("tool");
    assert_eq!(post.input_schema["required"], json!(["channel", "text"]));

    // The task assigned through ClickUp: an event, and a resource.
    let (ok, got) = call(&mcp, "nexus_next_events", json!({"wait_s": 30})).await;
    assert!(ok, "{got}");
    let first = &got["events"][0];
    assert_eq!(
        (first["type"].clone(), first["data"]["task"]["id"].clone()),
        (json!("task_assigned"), json!("T1")),
        "{got}"
    );
    let uri = tokio::time::timeout(Duration::from_secs(30), updated.recv())
        .await
        .expect("a resource update in time")
        .expect("update");
    assert_eq!(uri, "nexus://tasks/T1");
    let resources = mcp.list_all_resources().await.expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [uri.as_str()]);
    let read = mcp
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .expect("read");
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("text contents");
    };
    let task: Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(task["assigned"]["task"]["name"], "Fix login");

    // An event emitted through the operator API; the next call acks the task's.
    let writer = m.app.operator_key("write", None).await;
    let path = format!("/api/agents/{}/events", m.alice.agent.id);
    let (status, _) = m
        .app
        .post_json(
            &path,
            &writer,
            json!({"type": "wake_up", "data": {"text": "ping", "channel": "C1", "ts": "1.2"}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    let (_, got) = call(&mcp, "nexus_next_events", json!({"wait_s": 30})).await;
    assert_eq!(
        (
            got["events"][0]["type"].clone(),
            got["events"][0]["data"]["text"].clone()
        ),
        (json!("wake_up"), json!("ping")),
        "{got}"
    );
    let (_, acked) = call(&mcp, "nexus_ack", json!({})).await;
    let seq = got["events"][0]["seq"].as_u64().expect("seq");
    assert_eq!(acked["acked_seq"], seq);
    let cursor_path = format!("/api/agents/{}/inbox?limit=1", m.alice.agent.id);
    let key = m.reader.clone();
    let app = &m.app;
    crate::worker_host::wait_until("the node to record the ack", || {
        let (path, key) = (cursor_path.clone(), key.clone());
        async move { app.get_json(&path, &key).await["acked_seq"] == seq }
    })
    .await;

    // A node tool, reaching the fake Slack and ClickUp.
    let (ok, replied) = call(
        &mcp,
        "task_reply",
        json!({"task_id": "T1", "text": "On it"}),
    )
    .await;
    assert!(ok, "{replied}");
    let posts = m.fake.requests_to("/slack/chat.postMessage");
    assert_eq!(
        posts.last().expect("a post").body,
        json!({"channel": "C1", "text": "On it", "thread_ts": thread})
    );
    assert_eq!(m.fake.requests_to("/clickup/task/T1/comment").len(), 1);
    let (ok, refused) = call(
        &mcp,
        "slack_post_message",
        json!({"channel": "not a channel", "text": "x"}),
    )
    .await;
    assert!(!ok, "a refused tool call is a tool error: {refused}");

    // Status, and who is online (alice herself).
    let (ok, _) = call(
        &mcp,
        "nexus_set_status",
        json!({"status": "working", "detail": "T1"}),
    )
    .await;
    assert!(ok);
    let alice = m.alice.agent.id.to_string();
    crate::worker_host::wait_until("alice online and working", || {
        let alice = alice.clone();
        let mcp = &mcp;
        async move {
            let (_, online) = call(mcp, "nexus_online_agents", json!({})).await;
            online["agents"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["agent_id"] == alice.as_str() && x["status"] == "working")
            })
        }
    })
    .await;
    mcp.cancel().await.expect("close");
    let _ = &mut m;
}
