//! Opens many idle agent sockets against a running node and holds them, for a rough
//! memory-per-connection reading (the load-test crate measures it properly).
//!
//! ```sh
//! nexus agent create --tenant T --name-prefix idle- --count 10000 > agents.jsonl
//! NEXUS_JWT_SECRET=… cargo run --release --example idle_connections -- ws://127.0.0.1:8080 agents.jsonl 60
//! ```

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nexus::auth::JwtKeys;
use nexus_proto::{AgentId, ServerMsg, TenantId};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, file) = (
        args.get(1).cloned().unwrap_or_default(),
        args.get(2).cloned().unwrap_or_default(),
    );
    let hold = Duration::from_secs(args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60));
    let keys = JwtKeys::new(
        std::env::var("NEXUS_JWT_SECRET")?.as_bytes(),
        Duration::from_secs(3600),
    );
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut agents = Vec::new();
    for line in std::fs::read_to_string(&file)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let id: AgentId = v["id"].as_str().unwrap_or_default().parse()?;
        let tenant: TenantId = v["tenant_id"].as_str().unwrap_or_default().parse()?;
        agents.push(keys.issue(id, tenant, "idle").access_token);
    }
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(agents.len());
    let url = &url;
    for chunk in agents.chunks(200) {
        let opens = chunk.iter().map(|token| async move {
            let mut req = format!("{url}/agents?v=1").into_client_request()?;
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
            match ws.next().await {
                Some(Ok(Message::Text(t)))
                    if matches!(serde_json::from_str(&t)?, ServerMsg::Welcome { .. }) =>
                {
                    Ok(ws)
                }
                other => anyhow::bail!("expected welcome, got {other:?}"),
            }
        });
        for ws in futures_util::future::join_all(opens).await {
            sockets.push(ws?);
        }
    }
    let took = started.elapsed();
    println!(
        "{{\"connected\":{},\"seconds\":{:.2},\"connects_per_s\":{:.0}}}",
        sockets.len(),
        took.as_secs_f64(),
        sockets.len() as f64 / took.as_secs_f64()
    );
    // Hold them idle; keep reading so pings are answered.
    let read_all = futures_util::future::join_all(
        sockets
            .iter_mut()
            .map(|ws| async move { while ws.next().await.is_some() {} }),
    );
    let _ = tokio::time::timeout(hold, read_all).await;
    Ok(())
}
