//! A minimal Nexus agent: gets a token, connects, prints and acks every event, and
//! after a disconnect reconnects and resumes after the last event it handled.
//!
//! ```sh
//! NEXUS_URL=http://127.0.0.1:8080 NEXUS_CLIENT_ID=nxc_… NEXUS_CLIENT_SECRET=nxs_… \
//!     cargo run --example agent
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_proto::{ServerMsg, close};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("NEXUS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let (id, secret) = (
        std::env::var("NEXUS_CLIENT_ID")?,
        std::env::var("NEXUS_CLIENT_SECRET")?,
    );
    let http = reqwest::Client::new();
    let mut last_seq = 0u64; // the newest event handled: the resume point
    loop {
        let token: Value = http
            .post(format!("{base}/auth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = token["access_token"].as_str().unwrap_or_default();
        let url = format!(
            "{}/agents?v=1&after_seq={last_seq}&token={token}",
            base.replacen("http", "ws", 1)
        );
        let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!("connect failed: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        while let Some(Ok(frame)) = ws.next().await {
            let Message::Text(text) = frame else { continue };
            let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                continue;
            }; // unknown types: ignore
            if let Some((kind, event)) = msg.as_event() {
                if event.seq.get() <= last_seq {
                    continue; // a redelivery after reconnect: already handled
                }
                println!("{} #{}: {}", kind.as_str(), event.seq, event.data);
                last_seq = event.seq.get();
                ws.send(Message::text(
                    json!({"type": "ack", "data": {"seq": last_seq}}).to_string(),
                ))
                .await?;
            } else {
                println!("{text}");
            }
        }
        eprintln!(
            "disconnected (close codes: {} = restart, reconnecting)",
            close::SERVICE_RESTART
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
