//! What the agent sends: acks, presence, resume, refresh and tool requests, under the
//! inbound rate limit (acks that move the cursor excepted) and the abuse counter.

use axum::extract::ws::Message;
use futures_util::FutureExt;
use nexus_proto::{ClientMsg, ErrorCode, Seq, close};

use super::delivery::Ack;
use super::{End, Session};
use crate::presence::Update;
use crate::telemetry::catalog;

impl Session {
    /// Records an ack that [`super::delivery::Delivery::ack`] found advancing.
    async fn record_ack(&mut self, seq: Seq) {
        self.traced.acked(self.agent, seq);
        self.gw.hub.ack(self.agent, seq).await;
    }

    /// At shutdown, frames the agent already sent (acks above all) still count.
    pub(super) async fn drain_inbound(&mut self) {
        while let Some(Some(Ok(msg))) = self.socket.recv().now_or_never() {
            if let Message::Text(text) = msg
                && let Ok(frame) = nexus_proto::parse_client_frame(text.as_str())
                && let ClientMsg::Ack { data } = frame.msg
                && self.delivery.ack(data.seq) == Ack::Advance
            {
                self.record_ack(data.seq).await;
            }
        }
    }

    pub(super) async fn on_socket(
        &mut self,
        msg: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => return Err(classify_read_error(e)),
            None => return Err(End::Gone),
        };
        // Any frame is a sign of life, pong or not.
        self.pong_deadline = None;
        self.gw.hub.touch(self.agent, self.id);
        match msg {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => {
                self.refuse(
                    ErrorCode::InvalidJson,
                    "binary frames are not supported; send JSON text".into(),
                    None,
                )
                .await
            }
            // Pings cost a pong each: they count against the inbound rate like frames.
            Message::Ping(_) if self.inbound.check().is_err() => {
                let msg = "too many pings; slow down".into();
                self.refuse(ErrorCode::RateLimited, msg, None).await
            }
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(End::Gone),
        }
    }

    /// An error event for a bad frame; too many of them close the socket (1008).
    pub(super) async fn refuse(
        &mut self,
        code: ErrorCode,
        message: String,
        reference: Option<String>,
    ) -> Result<(), End> {
        metrics::counter!(catalog::WS_FRAME_ERRORS, "code" => code.as_str()).increment(1);
        if self.abuse.check().is_err() {
            return Err(End::Close(close::POLICY_VIOLATION));
        }
        self.send_error(code, message, reference).await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let parsed = nexus_proto::parse_client_frame(text);
        // An ack that moves the cursor is free: there is at most one per event sent, and
        // an agent acking each event of a backlog must not be cut off for it. Anything
        // else, repeated acks included, counts against the inbound rate.
        let advancing_ack = matches!(&parsed, Ok(f) if matches!(f.msg,
            ClientMsg::Ack { data } if self.delivery.check_ack(data.seq) == Ack::Advance));
        if !advancing_ack && self.inbound.check().is_err() {
            return self
                .refuse(
                    ErrorCode::RateLimited,
                    "too many frames; this one was dropped".into(),
                    None,
                )
                .await;
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(e) => return self.refuse(e.code, e.message, e.reference).await,
        };
        let reference = frame.id;
        match frame.msg {
            ClientMsg::Heartbeat => Ok(()),
            ClientMsg::AgentReady { data } => {
                let update = Update::Ready {
                    capabilities: data.capabilities,
                };
                Box::pin(self.gw.hub.update(self.agent, self.id, update)).await;
                Ok(())
            }
            ClientMsg::StatusUpdate { data } => {
                let update = Update::Status {
                    status: data.status,
                    detail: data.detail,
                };
                Box::pin(self.gw.hub.update(self.agent, self.id, update)).await;
                Ok(())
            }
            ClientMsg::Ack { data } => match self.delivery.ack(data.seq) {
                Ack::Advance => {
                    self.record_ack(data.seq).await;
                    Ok(())
                }
                Ack::Stale => Ok(()),
                Ack::Beyond => {
                    let msg = format!(
                        "cannot ack seq {} beyond the last delivered seq {}",
                        data.seq,
                        self.delivery.last_sent()
                    );
                    self.refuse(ErrorCode::InvalidFields, msg, reference).await
                }
            },
            ClientMsg::Resume { data } => {
                let cursor = Box::pin(self.gw.hub.cursor(self.agent))
                    .await
                    .map_err(|_| End::Close(close::SERVICE_RESTART))?;
                self.delivery.resume(data.after_seq, cursor);
                self.ctl.set_sent(self.delivery.last_sent());
                self.catch_up().await
            }
            ClientMsg::Refresh { data } => self.on_refresh(&data.token, reference).await,
            ClientMsg::ToolRequest { data } => {
                let waits = &self.tool_waits;
                self.gw.tools.dispatch(self.agent, self.tenant, data, waits);
                Ok(())
            }
        }
    }
}

fn classify_read_error(e: axum::Error) -> End {
    use tokio_tungstenite::tungstenite;
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => End::Close(close::MESSAGE_TOO_BIG),
        Some(tungstenite::Error::Protocol(_)) => End::Close(close::PROTOCOL_ERROR),
        _ => End::Gone,
    }
}
