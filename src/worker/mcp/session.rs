//! The bridge's agent session: one WebSocket to the node, kept across reconnects
//! (jittered backoff, resumed after the last event taken), with its token renewed on
//! `token_expiring`. Events wait in a bounded queue until the MCP client asks for
//! them; tool results also answer the `tool_request` they name.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_proto::{ClientMsg, Refresh, Seq, StatusUpdate, ToolRequest};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::worker::client::Node;
use crate::worker::state::RetryPolicy;

/// Events held for the MCP client; beyond it they stay on the node and are replayed
/// (`resume`) once the client has taken half.
const MAX_QUEUED: usize = 1000;
/// Reconnect delays: the worker's retry policy (exponential, capped, jittered).
const RECONNECT: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
    max_attempts: u32::MAX,
};
/// Close codes after which reconnecting is wrong (protocol README §6).
const FINAL: [u16; 3] = [4003, 4010, 4011];

/// What a task resource shows: the assignment and the updates since.
#[derive(Default)]
struct Task {
    assigned: Option<Value>,
    updates: Vec<Value>,
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<Value>,
    /// Highest seq taken into the queue (the replay point of a reconnect).
    last_seq: u64,
    /// Highest seq handed to the MCP client and not yet acked.
    handed: u64,
    overflowed: bool,
    tasks: BTreeMap<String, Task>,
}

pub struct Session {
    node: Arc<Node>,
    ws_url: String,
    out: mpsc::Sender<ClientMsg>,
    inbox: Mutex<Inbox>,
    arrived: Notify,
    tools: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Task resources whose content changed (their URIs), for the bridge to announce.
    changed: mpsc::Sender<String>,
    closed: Mutex<Option<String>>,
}

impl Session {
    /// Starts the session task; `changed` receives the URI of each task resource that
    /// changes.
    pub fn start(
        node: Arc<Node>,
        base: &str,
        changed: mpsc::Sender<String>,
        stop: CancellationToken,
    ) -> Arc<Session> {
        let ws_url = format!(
            "{}/agents",
            base.trim_end_matches('/').replacen("http", "ws", 1)
        );
        let (out, out_rx) = mpsc::channel(256);
        let session = Arc::new(Session {
            node,
            ws_url,
            out,
            inbox: Mutex::default(),
            arrived: Notify::new(),
            tools: Mutex::default(),
            changed,
            closed: Mutex::default(),
        });
        tokio::spawn(session.clone().run(out_rx, stop));
        session
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the node ended the agent for good, if it did.
    pub fn closed(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Acks what was handed over before, then waits up to `wait` for events and hands
    /// over at most `max`.
    pub async fn next_events(&self, wait: Duration, max: usize) -> Vec<Value> {
        self.ack(None).await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let taken = self.take(max);
            if !taken.is_empty() || tokio::time::Instant::now() >= deadline {
                return taken;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }

    fn take(&self, max: usize) -> Vec<Value> {
        let mut inbox = self.inbox();
        let n = max.min(inbox.queue.len());
        let taken: Vec<Value> = inbox.queue.drain(..n).collect();
        if let Some(seq) = taken.iter().rev().find_map(|e| e["seq"].as_u64()) {
            inbox.handed = inbox.handed.max(seq);
        }
        if inbox.overflowed && inbox.queue.len() <= MAX_QUEUED / 2 {
            let after_seq = Seq::new(inbox.last_seq);
            let resume = ClientMsg::Resume {
                data: nexus_proto::Resume { after_seq },
            };
            // Not sent (the outbox is full): the next take tries again.
            inbox.overflowed = self.out.try_send(resume).is_err();
        }
        taken
    }

    /// Acks up to `seq` (at most what was handed over), or everything handed over.
    /// Returns the seq acked, if any.
    pub async fn ack(&self, seq: Option<u64>) -> Option<u64> {
        let upto = {
            let inbox = self.inbox();
            seq.map_or(inbox.handed, |s| s.min(inbox.handed))
        };
        if upto == 0 {
            return None;
        }
        let ack = nexus_proto::Ack {
            seq: Seq::new(upto),
        };
        self.out.send(ClientMsg::Ack { data: ack }).await.ok()?;
        Some(upto)
    }

    pub async fn set_status(&self, status: String, detail: Option<String>) -> bool {
        let data = StatusUpdate { status, detail };
        self.out
            .send(ClientMsg::StatusUpdate { data })
            .await
            .is_ok()
    }

    /// Sends a `tool_request` and waits for its `tool_result`'s data.
    pub async fn tool(&self, tool: &str, args: Value, timeout: Duration) -> Option<Value> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.tools_map().insert(request_id.clone(), tx);
        let data = ToolRequest {
            request_id: request_id.clone(),
            tool: tool.to_owned(),
            args,
            timeout_ms: u64::try_from(timeout.as_millis()).ok(),
        };
        let sent = self.out.send(ClientMsg::ToolRequest { data }).await.is_ok();
        let answer = match sent {
            true => tokio::time::timeout(timeout, rx)
                .await
                .ok()
                .and_then(Result::ok),
            false => None,
        };
        self.tools_map().remove(&request_id);
        answer
    }

    fn tools_map(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.tools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The task resources: id → their content.
    pub fn tasks(&self) -> Vec<(String, Value)> {
        let inbox = self.inbox();
        let show = |t: &Task| json!({"assigned": t.assigned, "updates": t.updates});
        inbox
            .tasks
            .iter()
            .map(|(id, t)| (id.clone(), show(t)))
            .collect()
    }

    async fn run(self: Arc<Self>, mut out_rx: mpsc::Receiver<ClientMsg>, stop: CancellationToken) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            match self.connect_once(&mut out_rx, &stop).await {
                Ok(Some(code)) if FINAL.contains(&code) => {
                    tracing::error!(code, "the node ended this agent; not reconnecting");
                    *self.closed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("the node closed the agent's socket with {code}"));
                    return;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "agent socket failed; reconnecting");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RECONNECT.backoff(failures.max(1))) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One socket until it closes: its close code, if the node sent one.
    async fn connect_once(
        &self,
        out_rx: &mut mpsc::Receiver<ClientMsg>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<u16>> {
        let token = self.node.token().await?;
        let last_seq = self.inbox().last_seq;
        let url = match last_seq {
            0 => self.ws_url.clone(),
            n => format!("{}?after_seq={n}", self.ws_url),
        };
        let mut req = url.into_client_request()?;
        let headers = req.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("nexus.v1"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let (mut sink, mut stream) = ws.split();
        // Until `welcome` names the node's interval.
        let mut beat = tokio::time::interval(Duration::from_secs(20));
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(every) = self.on_frame(&text) {
                            beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                        }
                    }
                    Some(Ok(Message::Close(close))) => return Ok(close.map(|c| c.code.into())),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(None),
                },
                Some(msg) = out_rx.recv() => sink.send(Message::text(serde_json::to_string(&msg)?)).await?,
                _ = beat.tick() => sink.send(Message::text(r#"{"type":"heartbeat"}"#)).await?,
                () = stop.cancelled() => return Ok(None),
            }
        }
    }

    /// Handles one frame; for `welcome`, the heartbeat interval it asks for.
    fn on_frame(&self, text: &str) -> Option<Duration> {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        match frame["type"].as_str().unwrap_or("") {
            "welcome" => {
                let every = frame["data"]["heartbeat_interval_s"].as_u64()?.max(1);
                return Some(Duration::from_secs(every));
            }
            "token_expiring" => self.renew(),
            "error" => tracing::warn!(error = %frame["data"], "the node refused a frame"),
            "gap" => self.push(frame, None),
            _ => match frame["seq"].as_u64() {
                Some(seq) => self.push(frame, Some(seq)),
                None => tracing::debug!(frame = text, "frame ignored"),
            },
        }
        None
    }

    fn renew(&self) {
        let (node, out) = (self.node.clone(), self.out.clone());
        tokio::spawn(async move {
            match node.fresh_token().await {
                Ok(token) => {
                    let _ = out
                        .send(ClientMsg::Refresh {
                            data: Refresh { token },
                        })
                        .await;
                }
                Err(e) => tracing::warn!(error = %e, "token not renewed"),
            }
        });
    }

    /// Queues an event (a seq already taken is a redelivery: dropped).
    fn push(&self, frame: Value, seq: Option<u64>) {
        let mut inbox = self.inbox();
        if seq.is_some_and(|s| s <= inbox.last_seq) {
            return;
        }
        if inbox.overflowed || inbox.queue.len() >= MAX_QUEUED {
            inbox.overflowed = true; // left on the node; replayed by `take`
            return;
        }
        if let Some(seq) = seq {
            inbox.last_seq = seq;
        }
        if frame["type"] == "tool_result" {
            let id = frame["data"]["request_id"].as_str().unwrap_or_default();
            if let Some(waiting) = self.tools_map().remove(id) {
                let _ = waiting.send(frame["data"].clone());
            }
        }
        if let Some(uri) = track_task(&mut inbox.tasks, &frame) {
            let _ = self.changed.try_send(uri);
        }
        inbox.queue.push_back(frame);
        drop(inbox);
        self.arrived.notify_waiters();
    }
}

/// Records a `task_assigned` or `context_update` on its task; the task's URI.
fn track_task(tasks: &mut BTreeMap<String, Task>, frame: &Value) -> Option<String> {
    let data = &frame["data"];
    let (id, assigned) = match frame["type"].as_str()? {
        "task_assigned" => (data["task"]["id"].as_str()?, true),
        "context_update" => (data["task_id"].as_str()?, false),
        _ => return None,
    };
    let task = tasks.entry(id.to_owned()).or_default();
    match assigned {
        true => task.assigned = Some(data.clone()),
        false => {
            task.updates.push(data.clone());
            // The latest updates are what an assistant reads; older ones are on ClickUp.
            if task.updates.len() > 50 {
                task.updates.remove(0);
            }
        }
    }
    Some(super::task_uri(id))
}
