//! One agent's socket, from `welcome` to close: replay, live delivery, acks,
//! keepalive, token expiry, inbound limits.
//!
//! Delivery invariant: frames go out in strictly increasing `seq`; what to send
//! next is decided by [`delivery::Delivery`]. The session registers for pushes
//! *before* it reads the inbox, and an event is committed before it is pushed, so
//! nothing falls between the replay and live.

mod delivery;
mod inbound;
mod lifetime;
mod traced;

use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use nexus_proto::{
    AgentId, ErrorCode, ErrorData, EventType, Gap, PROTOCOL_V1, Seq, ServerMsg, SessionId,
    TenantId, Welcome, close,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use self::delivery::{Delivery, Pushed};
use super::Gateway;
use crate::bus::{Attached, Push, SessionCtl};
use crate::store::{Cursor, InboxEvent};
use crate::telemetry::catalog;
use crate::time::now_ms;

/// Events read from the inbox per round trip during replay.
const REPLAY_PAGE: u32 = 256;
/// Bad frames tolerated per minute before the socket is closed with 1008.
const ABUSE_PER_MINUTE: u32 = 20;

/// What the upgrade handler learned before the socket opened.
pub struct SessionInit {
    pub agent: AgentId,
    pub tenant: TenantId,
    /// The token's `exp`, Unix seconds.
    pub token_exp: i64,
    /// When that token was issued (Unix ms), for `nexus agent revoke-tokens`.
    pub token_issued_ms: i64,
    /// The replay point the agent asked for (`?after_seq`), if any.
    pub after_seq: Option<Seq>,
    pub cursor: Cursor,
    /// The tenant's tier's concurrent-socket limit.
    pub socket_cap: Option<u32>,
}

/// Why the session ended.
enum End {
    /// Close with this code.
    Close(u16),
    /// The peer is gone (closed, reset, or an I/O error): nothing more to send.
    Gone,
}

struct Session {
    /// Boxed, like the opening's arguments: the session's future keeps a slot for every
    /// argument and every awaited call for its whole life, so whatever is large lives
    /// behind a pointer (see `a_session_future_stays_small`).
    socket: Box<WebSocket>,
    rx: mpsc::Receiver<Push>,
    ctl: Arc<SessionCtl>,
    /// Its hub is the session's one counterpart for inbox, acks and presence.
    gw: Arc<Gateway>,
    id: SessionId,
    agent: AgentId,
    tenant: TenantId,
    delivery: Delivery,
    timer: Pin<Box<Sleep>>,
    next_ping: Instant,
    /// Set while a ping is unanswered: the socket must show life before then.
    pong_deadline: Option<Instant>,
    token_warn_at: Option<Instant>,
    token_close_at: Instant,
    inbound: DefaultDirectRateLimiter,
    abuse: DefaultDirectRateLimiter,
    traced: traced::Traced,
    /// The waits of this session's tool requests: cancelled as it ends.
    tool_waits: CancellationToken,
}

pub async fn run(socket: Box<WebSocket>, gw: Arc<Gateway>, init: Box<SessionInit>) {
    let SessionInit {
        agent,
        tenant,
        token_exp,
        token_issued_ms,
        after_seq,
        cursor,
        socket_cap,
    } = *init;
    let ws = &gw.ws;
    let hub = gw.hub.clone();
    let attached = hub.attach(agent, tenant, ws.outbound_queue, socket_cap);
    let Some(Attached {
        session_id: id,
        rx,
        ctl,
    }) = Box::pin(attached).await
    else {
        // Boxed: inline, this rare path's future would be reserved in every session's.
        Box::pin(refuse_over_quota(socket, tenant)).await;
        return;
    };
    let delivery = Delivery::connect(after_seq, cursor);
    ctl.set_sent(delivery.last_sent());
    ctl.set_token_issued(token_issued_ms);
    let now_ms = now_ms();
    count_sockets(tenant, 1.0);
    metrics::counter!(catalog::WS_CONNECTS).increment(1);
    tracing::debug!(agent_id = %agent, session_id = %id, after_seq = %delivery.last_sent(), "session open");

    let now = Instant::now();
    let token_expiry = now + Duration::from_millis((token_exp * 1000 - now_ms).max(0) as u64);
    let rate = NonZeroU32::new(ws.inbound_rate.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    let abuse = NonZeroU32::new(ABUSE_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
    let mut session = Session {
        socket,
        rx,
        ctl,
        id,
        agent,
        tenant,
        delivery,
        timer: Box::pin(tokio::time::sleep_until(now)),
        next_ping: now + ws.ping_interval,
        pong_deadline: None,
        token_warn_at: Some(
            token_expiry
                .checked_sub(ws.token_warning)
                .unwrap_or(now)
                .max(now),
        ),
        token_close_at: token_expiry + ws.token_grace,
        inbound: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        abuse: RateLimiter::direct(Quota::per_minute(abuse)),
        traced: traced::Traced::default(),
        tool_waits: CancellationToken::new(),
        gw: gw.clone(),
    };
    let greeted = {
        // Scoped: a local alive across `run` would be reserved in the idle state too.
        let welcome = ServerMsg::Welcome {
            data: Welcome {
                session_id: id,
                agent_id: agent,
                tenant_id: tenant,
                protocol: PROTOCOL_V1.into(),
                heartbeat_interval_s: ws.ping_interval.as_secs().max(1),
                last_acked_seq: cursor.acked_seq,
            },
        };
        Box::pin(session.send_control(&welcome)).await
    };
    let end = match greeted {
        Ok(()) => session.run().await,
        Err(end) => end,
    };
    // Offline as soon as the session decides to end, before the goodbye handshake
    // (which can take seconds for a slow consumer); its tool requests stop waiting first.
    session.tool_waits.cancel();
    Box::pin(hub.detach(agent, id)).await;
    let code = match end {
        End::Close(code) => {
            Box::pin(session.close(code)).await;
            code
        }
        End::Gone => 0,
    };
    count_sockets(tenant, -1.0);
    let reason = if code == 0 {
        "gone"
    } else {
        close::reason(code)
    };
    metrics::counter!(catalog::WS_DISCONNECTS, "reason" => reason).increment(1);
    tracing::debug!(agent_id = %agent, session_id = %id, reason, "session closed");
}

/// The tenant has its tier's number of sockets: this one is closed at once (4029).
async fn refuse_over_quota(mut socket: Box<WebSocket>, tenant: TenantId) {
    crate::quota::count_refusal(tenant, crate::quota::Quota::Sockets);
    tracing::info!(tenant_id = %tenant, "socket refused: the tenant is at its tier's socket limit");
    goodbye(&mut socket, close::QUOTA_EXCEEDED).await;
    let reason = close::reason(close::QUOTA_EXCEEDED);
    metrics::counter!(catalog::WS_DISCONNECTS, "reason" => reason).increment(1);
}

/// Says goodbye with `code` and waits briefly for the peer's close, so the TCP
/// connection ends cleanly rather than with a reset. A slow consumer gets longer:
/// its close frame queues behind everything it has not read yet.
async fn goodbye(socket: &mut WebSocket, code: u16) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(close::reason(code)),
    };
    let patience = Duration::from_secs(if code == close::SLOW_CONSUMER { 5 } else { 2 });
    let goodbye = async move {
        socket.send(Message::Close(Some(frame))).await.ok()?;
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
        Some(())
    };
    let _ = tokio::time::timeout(patience, goodbye).await;
}

/// This node's open-socket gauges: all of them and the tenant's.
fn count_sockets(tenant: TenantId, delta: f64) {
    metrics::gauge!(catalog::WS_CONNECTIONS).increment(delta);
    metrics::gauge!(catalog::TENANT_WS_CONNECTIONS, "tenant" => tenant.to_string())
        .increment(delta);
}

impl Session {
    async fn run(&mut self) -> End {
        if let Err(end) = Box::pin(self.catch_up()).await {
            return end;
        }
        let shutdown = self.gw.shutdown.clone();
        self.arm_timer();
        loop {
            // Inbound before outbound: inbound is rate limited, and an agent's acks
            // should be counted before more is pushed at it.
            let step = tokio::select! {
                biased;
                _ = self.ctl.closed() => Err(End::Close(self.ctl.code())),
                _ = shutdown.cancelled() => {
                    Box::pin(self.drain_inbound()).await;
                    Err(End::Close(close::SERVICE_RESTART))
                }
                // Handlers are boxed: their futures are large, and inline they would
                // be reserved in every idle session's state (measured: 2.6 KiB).
                msg = self.socket.recv() => Box::pin(self.on_socket(msg)).await,
                ev = self.rx.recv() => match ev {
                    Some(ev) => Box::pin(self.on_pushed(ev)).await,
                    None => Err(End::Close(close::SERVICE_RESTART)),
                },
                _ = &mut self.timer => Box::pin(self.on_timer()).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// A committed event pushed by this node, or word that more is committed.
    async fn on_pushed(&mut self, push: Push) -> Result<(), End> {
        let mut next = Some(push);
        // Write what else is already queued in the same burst, then flush once.
        while let Some(push) = next {
            match (self.delivery.on_push(&push), push) {
                (Pushed::Stale, _) => {}
                (Pushed::Next, Push::Event(ev)) => self.feed_event(&ev).await?,
                // Something between is not sent yet, or the inbox has more: read it.
                _ => {
                    self.flush().await?;
                    return self.catch_up().await;
                }
            }
            next = self.rx.try_recv().ok();
        }
        self.flush().await
    }

    /// Sends every inbox event after `last_sent`, page by page, until the inbox has
    /// no more. Pushed events queued meanwhile are dropped before each read: they
    /// were committed before being pushed, so that read returns them.
    async fn catch_up(&mut self) -> Result<(), End> {
        let hub = self.gw.hub.clone();
        loop {
            while self.rx.try_recv().is_ok() {}
            // Boxed, like every database call here: the session's future stays small
            // while it idles (it is allocated once per connection).
            let after = self.delivery.last_sent();
            let page = Box::pin(hub.replay_page(self.agent, after, REPLAY_PAGE))
                .await
                .map_err(|e| {
                    tracing::warn!(agent_id = %self.agent, error = %e, "inbox read failed; closing");
                    End::Close(close::SERVICE_RESTART)
                })?;
            let step = self.delivery.on_page(&page, REPLAY_PAGE);
            if let Some(gap) = step.gap {
                self.ctl.set_sent(self.delivery.last_sent());
                self.send_gap(gap).await?;
            }
            for ev in &page {
                self.feed_event(ev).await?;
            }
            self.flush().await?;
            if !step.more {
                return Ok(());
            }
        }
    }

    async fn send_gap(&mut self, gap: Gap) -> Result<(), End> {
        metrics::counter!(catalog::INBOX_GAPS).increment(1);
        self.send_control(&ServerMsg::Gap { data: gap }).await
    }

    async fn feed_event(&mut self, ev: &InboxEvent) -> Result<(), End> {
        if ev.kind == EventType::ToolResult {
            self.gw.tools.answered(self.agent, &ev.data);
        }
        let ts = chrono::DateTime::from_timestamp_millis(ev.created_at).unwrap_or_default();
        let frame = nexus_proto::encode_event(
            ev.kind,
            ev.event_id,
            ev.seq,
            ts,
            ev.trace_id.as_deref(),
            &ev.data,
        );
        self.write(Message::Text(Utf8Bytes::from(frame)), false)
            .await?;
        self.delivery.sent(ev.seq);
        self.ctl.set_sent(ev.seq);
        self.traced.sent(self.agent, ev.seq, ev.trace_id.as_ref());
        metrics::counter!(catalog::EVENTS_DELIVERED, "type" => ev.kind.as_str()).increment(1);
        let age = (now_ms() - ev.created_at).max(0) as f64 / 1000.0;
        metrics::histogram!(catalog::ACCEPT_TO_DELIVER).record(age);
        Ok(())
    }

    async fn send_control(&mut self, msg: &ServerMsg) -> Result<(), End> {
        self.write(
            Message::Text(Utf8Bytes::from(nexus_proto::encode(msg))),
            true,
        )
        .await
    }

    async fn send_error(
        &mut self,
        code: ErrorCode,
        message: String,
        reference: Option<String>,
    ) -> Result<(), End> {
        let msg = ServerMsg::Error {
            data: ErrorData {
                code,
                message,
                reference,
            },
        };
        self.send_control(&msg).await
    }

    /// Writes a frame; a socket that cannot take it stops us only until the bus or
    /// shutdown gives up on it, or until it has taken nothing for the pong timeout
    /// (4009). That last bound matters while catching up from the inbox: no push comes
    /// then to overflow the queue, and the timer (pings, pong deadline) is not polled,
    /// so an agent that stopped reading with a backlog would hold its session forever.
    async fn write(&mut self, msg: Message, flush: bool) -> Result<(), End> {
        let (socket, ctl, shutdown) = (&mut self.socket, &self.ctl, &self.gw.shutdown);
        let io = async move {
            if flush {
                socket.send(msg).await
            } else {
                socket.feed(msg).await
            }
        };
        tokio::select! {
            biased;
            r = io => r.map_err(|_| End::Gone),
            _ = ctl.closed() => Err(End::Close(ctl.code())),
            _ = shutdown.cancelled() => Err(End::Close(close::SERVICE_RESTART)),
            _ = tokio::time::sleep(self.gw.ws.pong_timeout) => Err(End::Close(close::SLOW_CONSUMER)),
        }
    }

    /// Flushes, within [`Session::write`]'s bounds.
    async fn flush(&mut self) -> Result<(), End> {
        let (socket, ctl) = (&mut self.socket, &self.ctl);
        tokio::select! {
            biased;
            r = socket.flush() => r.map_err(|_| End::Gone),
            _ = ctl.closed() => Err(End::Close(ctl.code())),
            _ = tokio::time::sleep(self.gw.ws.pong_timeout) => Err(End::Close(close::SLOW_CONSUMER)),
        }
    }

    async fn close(&mut self, code: u16) {
        goodbye(&mut self.socket, code).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    fn future_size<A, B, C, F: Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The session's future is allocated once per socket and held while it idles: it
    /// was 2,488 bytes (unoptimised build) before the socket, the opening's arguments
    /// and the rare paths' futures were moved behind pointers.
    #[test]
    fn a_session_future_stays_small() {
        let size = future_size(super::run as fn(_, _, _) -> _);
        assert!(size <= LIMIT, "session future: {size} bytes");
    }

    // 808 bytes at the time of writing; some room for fields yet to come.
    const LIMIT: usize = 1024;
}
