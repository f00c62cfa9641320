//! One simulated agent: open its socket with either server's handshake (until
//! `welcome`), then read events, report each load-test event as a
//! [`Delivery`] and ack cumulatively, at most every [`ACK_EVERY`] (the node
//! rate-limits inbound frames).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use nexus_proto::{Ack, ClientMsg, Seq, ServerMsg};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};

use crate::target::Target;
use crate::wire::socketio::{self, NSP, Packet};
use crate::wire::{Ws, stamp, ws_config};

/// Acks are cumulative and sent at most this often per socket.
pub const ACK_EVERY: Duration = Duration::from_millis(50);

/// A load-test event seen by an agent. `i` numbers the events of a run;
/// `t_ns` is their intended send time, `recv_ns` when the frame was read
/// (both Unix nanoseconds on this machine's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub agent: u32,
    pub i: u64,
    pub t_ns: u64,
    pub recv_ns: u64,
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Opens an agent socket and waits for `welcome`.
pub async fn open(target: Target, ws_base: &str, token: &str) -> Result<Ws> {
    match target {
        Target::Nexus => open_nexus(ws_base, token).await,
        Target::Socketio => open_socketio(ws_base, token).await,
    }
}

async fn open_nexus(ws_base: &str, token: &str) -> Result<Ws> {
    let mut req = format!("{ws_base}/agents?v=1").into_client_request()?;
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(text) => match serde_json::from_str::<ServerMsg>(&text)? {
                ServerMsg::Welcome { .. } => return Ok(ws),
                other => bail!("expected welcome, got {}", other.type_name()),
            },
            Message::Close(frame) => bail!("closed before welcome: {frame:?}"),
            _ => {}
        }
    }
    bail!("connection ended before welcome")
}

/// The baseline's handshake: WebSocket upgrade, Engine.IO open, namespace connect
/// with the token, then waits for `welcome`.
async fn open_socketio(ws_base: &str, token: &str) -> Result<Ws> {
    let url = format!("{ws_base}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
    let mut connected = false;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        match socketio::parse(&text)? {
            Packet::Open(_) => {
                ws.send(Message::text(socketio::connect_frame(token)))
                    .await?;
            }
            Packet::Ping => ws.send(Message::text(socketio::PONG)).await?,
            Packet::Connect { nsp, .. } if nsp == NSP => connected = true,
            Packet::ConnectError { payload, .. } => bail!("refused: {payload}"),
            Packet::Event { payload, .. } if connected && payload.starts_with(r#"["welcome""#) => {
                return Ok(ws);
            }
            Packet::Disconnect { .. } | Packet::Close => bail!("closed before welcome"),
            _ => {}
        }
    }
    bail!("connection ended before welcome")
}

/// Reads until the socket ends. Socket.IO pings are answered here; the
/// WebSocket pings of Nexus are answered by tungstenite while reading.
pub async fn read_loop(target: Target, agent: u32, mut ws: Ws, tx: UnboundedSender<Delivery>) {
    // Nexus acks a seq; Socket.IO has none, so its client acks a count.
    let mut received: u64 = 0;
    let mut acked: u64 = 0;
    let mut last_ack = Instant::now();
    loop {
        let due = last_ack + ACK_EVERY;
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = tokio::time::sleep_until(due), if received > acked => {
                if send_ack(target, &mut ws, received).await.is_err() {
                    return;
                }
                acked = received;
                last_ack = Instant::now();
                continue;
            }
        };
        let Some(Ok(Message::Text(text))) = msg else {
            match msg {
                Some(Ok(_)) => continue,
                _ => return,
            }
        };
        let recv_ns = unix_ns();
        let event = match target {
            Target::Nexus => match serde_json::from_str::<ServerMsg>(&text) {
                Ok(msg) => msg.as_event().map(|(_, frame)| {
                    received = received.max(frame.seq.get());
                    stamp(&frame.data)
                }),
                Err(_) => None,
            },
            Target::Socketio => match socketio::parse(&text) {
                Ok(Packet::Ping) => {
                    if ws.send(Message::text(socketio::PONG)).await.is_err() {
                        return;
                    }
                    None
                }
                Ok(Packet::Event { payload, .. }) => socketio::event_data(payload).map(|data| {
                    received += 1;
                    stamp(&data)
                }),
                Ok(Packet::Disconnect { .. } | Packet::Close) => return,
                _ => None,
            },
        };
        if let Some(Some((i, t_ns))) = event {
            let _ = tx.send(Delivery {
                agent,
                i,
                t_ns,
                recv_ns,
            });
        }
        if received > acked && last_ack.elapsed() >= ACK_EVERY {
            if send_ack(target, &mut ws, received).await.is_err() {
                return;
            }
            acked = received;
            last_ack = Instant::now();
        }
    }
}

async fn send_ack(target: Target, ws: &mut Ws, seq: u64) -> Result<()> {
    let frame = match target {
        Target::Nexus => serde_json::to_string(&ClientMsg::Ack {
            data: Ack { seq: Seq::new(seq) },
        })?,
        Target::Socketio => socketio::ack_frame(seq),
    };
    ws.send(Message::text(frame)).await?;
    Ok(())
}
