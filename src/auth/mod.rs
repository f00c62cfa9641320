//! Who is calling: agents by OAuth2 client credentials and JWTs, operators by API keys.

pub mod jwt;
mod oauth;
mod operator;
pub mod secrets;
mod throttle;

pub use jwt::{Claims, IssuedToken, JwtKeys, TokenError};
pub use oauth::token_endpoint;
pub use operator::{Operator, OperatorKeys};

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::store::{AgentStatus, Store, StoreError};
use throttle::Throttle;

#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("client authentication failed")]
    InvalidClient,
    #[error("too many failed attempts; retry in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies client credentials and issues tokens: the one code path behind
/// `POST /auth/token` and `nexus token`.
pub struct Authenticator {
    store: Store,
    keys: JwtKeys,
    throttle: Throttle,
    /// argon2 costs CPU and memory per call: bound how many run at once so a burst
    /// of token requests cannot starve the node.
    verify_slots: Semaphore,
    /// Verified against when the client id is unknown, so timing does not reveal it.
    dummy_hash: Arc<str>,
}

impl Authenticator {
    pub fn new(store: Store, keys: JwtKeys) -> Authenticator {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Authenticator {
            store,
            keys,
            throttle: Throttle::new(5, Duration::from_secs(60)),
            verify_slots: Semaphore::new(slots),
            dummy_hash: secrets::hash_secret(&secrets::generate_client_secret()).into(),
        }
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    pub async fn issue_for_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<IssuedToken, ClientAuthError> {
        if let Some(wait) = self.throttle.blocked(client_id, Instant::now()) {
            metrics::counter!("nexus_auth_failures_total", "reason" => "throttled").increment(1);
            return Err(ClientAuthError::Throttled(wait));
        }
        let found = self.store.agent_credentials(client_id).await?;
        let hash: Arc<str> = match &found {
            Some((_, hash)) => hash.as_str().into(),
            None => self.dummy_hash.clone(),
        };
        let secret = client_secret.to_owned();
        let verified = {
            let _slot = self
                .verify_slots
                .acquire()
                .await
                .map_err(|_| ClientAuthError::InvalidClient)?;
            tokio::task::spawn_blocking(move || secrets::verify_secret(&secret, &hash))
                .await
                .unwrap_or(false)
        };
        match found {
            Some((agent, _)) if verified && agent.status == AgentStatus::Active => {
                self.throttle.record_success(client_id);
                metrics::counter!("nexus_tokens_issued_total").increment(1);
                Ok(self.keys.issue(agent.id, agent.tenant_id, &agent.client_id))
            }
            found => {
                let (reason, agent_id) = match &found {
                    None => ("unknown_client", None),
                    Some((a, _)) if verified => ("agent_disabled", Some(a.id.to_string())),
                    Some((a, _)) => ("wrong_secret", Some(a.id.to_string())),
                };
                tracing::info!(reason, agent_id, "client authentication failed");
                metrics::counter!("nexus_auth_failures_total", "reason" => reason).increment(1);
                self.throttle.record_failure(client_id, Instant::now());
                Err(ClientAuthError::InvalidClient)
            }
        }
    }
}
