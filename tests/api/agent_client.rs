//! A minimal agent: a real WebSocket client speaking protocol v1.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_proto::{AgentId, ServerMsg};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

/// A guard against hangs, not a synchronisation device: every wait below awaits a frame.
const PATIENCE: Duration = Duration::from_secs(15);

pub struct Agent {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Agent(connected)")
    }
}

/// What a refused connection looked like: status and body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub fn token_for(&self, agent: AgentId, tenant: nexus_proto::TenantId) -> String {
        self.state
            .auth
            .keys()
            .issue(agent, tenant, "test-client")
            .access_token
    }

    /// Connects `agent` with a fresh token and reads its `welcome`.
    pub async fn online(
        &self,
        agent: &nexus::admin::AgentWithSecret,
        tenant: nexus_proto::TenantId,
    ) -> Agent {
        let mut ws = self
            .connect(&self.token_for(agent.agent.id, tenant), "")
            .await
            .expect("connects");
        ws.welcome().await;
        ws
    }

    /// Connects to `/agents?{query}` with `token` as a Bearer header.
    pub async fn connect(&self, token: &str, query: &str) -> Result<Agent, Refused> {
        self.connect_with(Some(token), query, &[]).await
    }

    pub async fn connect_with(
        &self,
        token: Option<&str>,
        query: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Agent, Refused> {
        connect_at(&self.addr.to_string(), token, query, headers).await
    }
}

/// Connects to the node at `addr` (`host:port`) as an agent.
pub async fn connect_at(
    addr: &str,
    token: Option<&str>,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Agent, Refused> {
    let url = format!("ws://{addr}/agents?{query}");
    let mut req = url.into_client_request().expect("request");
    if let Some(token) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
    }
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, HeaderValue::from_str(value).expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Agent { ws }),
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err(Refused { status, body })
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

impl Agent {
    /// The next protocol message; pings are answered by the library.
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no frame within the patience window")
                .expect("socket ended")
                .expect("socket error");
            match frame {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("unparseable server frame {t}: {e}"));
                }
                Message::Close(c) => panic!("closed unexpectedly: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The welcome frame's data.
    pub async fn welcome(&mut self) -> nexus_proto::Welcome {
        match self.recv().await {
            ServerMsg::Welcome { data } => data,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Reads until the server closes; returns the close code (skipping other frames).
    pub async fn closed(&mut self) -> u16 {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no close within the patience window");
            match frame {
                Some(Ok(Message::Close(Some(c)))) => return u16::from(c.code),
                Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws
            .send(Message::text(s.to_owned()))
            .await
            .expect("send");
    }
}

/// The event of an inbox message: (type, seq, id, data).
pub fn event(msg: &ServerMsg) -> (&'static str, u64, String, Value) {
    let (kind, frame) = msg
        .as_event()
        .unwrap_or_else(|| panic!("expected an event, got {msg:?}"));
    (
        kind.as_str(),
        frame.seq.get(),
        frame.id.to_string(),
        frame.data.clone(),
    )
}
