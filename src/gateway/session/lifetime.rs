//! A session's clocks: keepalive pings, and the token's lifetime (`token_expiring`,
//! `refresh`, close 4001), sharing one timer armed for the earliest deadline.

use std::time::Duration;

use axum::extract::ws::Message;
use nexus_proto::{ErrorCode, ServerMsg, TokenExpiring, close};
use tokio::time::Instant;

use super::{End, Session};
use crate::store::AgentStatus;
use crate::time::now_ms;

impl Session {
    pub(super) async fn on_refresh(
        &mut self,
        token: &str,
        reference: Option<String>,
    ) -> Result<(), End> {
        match self.gw.keys.verify(token) {
            Ok(claims) if claims.sub == self.agent => {
                // A disabled agent's tokens stay valid until they expire: refresh is where
                // a live session learns of it without a query per frame.
                match Box::pin(self.gw.store.get_agent(self.agent)).await {
                    Ok(agent) if agent.status != AgentStatus::Active => {
                        return Err(End::Close(close::AGENT_DISABLED));
                    }
                    Ok(agent) if !agent.accepts_token_issued_at(claims.issued_at_ms()) => {
                        let msg = "refresh token was revoked; get a new one".to_owned();
                        return self.refuse(ErrorCode::InvalidToken, msg, reference).await;
                    }
                    Ok(_) => {}
                    Err(_) => return Err(End::Close(close::SERVICE_RESTART)),
                }
                self.ctl.set_token_issued(claims.issued_at_ms());
                let ws = &self.gw.ws;
                let now = Instant::now();
                let left = Duration::from_millis((claims.exp * 1000 - now_ms()).max(0) as u64);
                self.token_warn_at = Some(
                    (now + left)
                        .checked_sub(ws.token_warning)
                        .unwrap_or(now)
                        .max(now),
                );
                self.token_close_at = now + left + ws.token_grace;
                self.arm_timer();
                Ok(())
            }
            _ => {
                let msg = "refresh token is invalid, expired or for another agent".to_owned();
                self.refuse(ErrorCode::InvalidToken, msg, reference).await
            }
        }
    }

    /// Keepalive and token deadlines share one timer, armed for the earliest.
    pub(super) async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let ws = self.gw.ws.clone();
        if now >= self.token_close_at {
            return Err(End::Close(close::TOKEN_EXPIRED));
        }
        if self.pong_deadline.is_some_and(|deadline| now >= deadline) {
            return Err(End::Close(close::IDLE_TIMEOUT));
        }
        if let Some(warn_at) = self.token_warn_at
            && now >= warn_at
        {
            self.token_warn_at = None;
            let left = self
                .token_close_at
                .saturating_duration_since(now)
                .saturating_sub(ws.token_grace);
            let msg = ServerMsg::TokenExpiring {
                data: TokenExpiring {
                    expires_at: chrono::Utc::now() + left,
                    expires_in_s: left.as_secs(),
                },
            };
            self.send_control(&msg).await?;
        }
        if now >= self.next_ping {
            self.write(Message::Ping(Default::default()), true).await?;
            self.pong_deadline.get_or_insert(now + ws.pong_timeout);
            self.next_ping = now + ws.ping_interval;
        }
        self.arm_timer();
        Ok(())
    }

    pub(super) fn arm_timer(&mut self) {
        let mut at = self.next_ping.min(self.token_close_at);
        if let Some(w) = self.token_warn_at {
            at = at.min(w);
        }
        if let Some(d) = self.pong_deadline {
            at = at.min(d);
        }
        self.timer.as_mut().reset(at);
    }
}
