//! Who is calling: agents by OAuth2 client credentials and JWTs, operators by API keys.

mod hs256;
pub mod jwt;
mod oauth;
mod operator;
pub mod secrets;
mod throttle;

pub use jwt::{Claims, IssuedToken, JwtKeys, TokenError};
pub(crate) use oauth::client_credentials;
pub use oauth::{__path_token_endpoint, token_endpoint};
pub use operator::{Operator, OperatorKeys};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::cache::Misses;
use crate::config::AuthOpts;
use crate::store::{Agent, AgentStatus, Store, StoreError, TenantStatus};
use crate::telemetry::catalog;
use throttle::Throttle;

#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("client authentication failed")]
    InvalidClient,
    /// The credentials are right but the agent's tenant is suspended.
    #[error("the agent's tenant is suspended")]
    TenantSuspended,
    #[error("too many failed attempts; retry in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("too many token requests are waiting; retry shortly")]
    Busy,
    /// The credentials lookup got no answer in time: the database hangs.
    #[error("storage did not answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies client credentials and issues tokens: the one code path behind
/// `POST /auth/token` and `nexus token`.
pub struct Authenticator {
    store: Store,
    keys: JwtKeys,
    /// Failures per (address, client id): a stranger elsewhere cannot lock a client out.
    per_client: Throttle,
    /// Failures per address, whatever the client id: one address spraying ids stops.
    per_address: Throttle,
    pool: VerifyPool,
    /// Client ids found unknown: answered without a query or argon2.
    unknown: Misses<String>,
    /// Longest wait for the credentials lookup (`--db-request-timeout`).
    patience: Duration,
}

impl Authenticator {
    pub fn new(
        store: Store,
        keys: JwtKeys,
        opts: &AuthOpts,
        cache_ttl: Duration,
        patience: Duration,
    ) -> Authenticator {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        Authenticator {
            store,
            keys,
            per_client: Throttle::new(opts.max_failures, FAILURE_WINDOW),
            per_address: Throttle::new(opts.max_failures_per_address, FAILURE_WINDOW),
            pool: VerifyPool::new(slots, opts.verify_queue),
            unknown: Misses::new(cache_ttl),
            patience,
        }
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// argon2 verifications run by this authenticator (`nexus_auth_verifications_total`
    /// counts them for the whole process).
    pub fn verifications(&self) -> u64 {
        self.pool.runs.load(Ordering::Relaxed)
    }

    /// `from` is the caller's address (`None`: a local process, the CLI).
    pub async fn issue_for_client(
        &self,
        client_id: &str,
        client_secret: &str,
        from: Option<IpAddr>,
    ) -> Result<IssuedToken, ClientAuthError> {
        let address = from.map_or_else(|| "local".to_owned(), |ip| ip.to_string());
        let pair = format!("{address} {client_id}");
        let now = Instant::now();
        if let Some(wait) = self
            .per_address
            .blocked(&address, now)
            .or_else(|| self.per_client.blocked(&pair, now))
        {
            count_failure("throttled");
            return Err(ClientAuthError::Throttled(wait));
        }
        let verdict = self.check(client_id, client_secret).await?;
        match verdict {
            Ok(agent) => {
                self.per_client.record_success(&pair);
                metrics::counter!(catalog::TOKENS_ISSUED).increment(1);
                Ok(self.keys.issue(agent.id, agent.tenant_id, &agent.client_id))
            }
            Err(("tenant_suspended", agent_id)) => {
                // Not a failed guess: the secret was right, so nothing is throttled.
                tracing::info!(agent_id, %address, "token refused: the tenant is suspended");
                count_failure("tenant_suspended");
                Err(ClientAuthError::TenantSuspended)
            }
            Err((reason, agent_id)) => {
                tracing::info!(reason, agent_id, %address, "client authentication failed");
                count_failure(reason);
                self.per_client.record_failure(&pair, now);
                self.per_address.record_failure(&address, now);
                Err(ClientAuthError::InvalidClient)
            }
        }
    }

    /// The agent if the secret is right and it is active; otherwise why not. Unknown
    /// client ids cost no argon2: client ids are not secrets, so the timing difference
    /// tells a stranger nothing a token request wouldn't.
    async fn check(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Result<Agent, (&'static str, Option<String>)>, ClientAuthError> {
        let client_id = client_id.to_owned();
        if self.unknown.contains(&client_id) {
            return Ok(Err(("unknown_client", None)));
        }
        let lookup = self.store.agent_credentials(&client_id);
        let found = tokio::time::timeout(self.patience, lookup)
            .await
            .map_err(|_| {
                crate::http::storage_timed_out("token", self.patience);
                ClientAuthError::TimedOut(self.patience)
            })??;
        let Some((agent, hash, tenant)) = found else {
            self.unknown.insert(client_id);
            return Ok(Err(("unknown_client", None)));
        };
        let secret = client_secret.to_owned();
        let verified = self
            .pool
            .run(move || secrets::verify_secret(&secret, &hash))
            .await?;
        let id = Some(agent.id.to_string());
        Ok(match (verified, agent.status) {
            (true, _) if tenant == TenantStatus::Suspended => Err(("tenant_suspended", id)),
            (true, AgentStatus::Active) => Ok(agent),
            (true, _) => Err(("agent_disabled", id)),
            (false, _) => Err(("wrong_secret", id)),
        })
    }
}

/// Counts a refused token request (`nexus_auth_failures_total{endpoint="token"}`).
fn count_failure(reason: &'static str) {
    metrics::counter!(catalog::AUTH_FAILURES, "endpoint" => "token", "reason" => reason)
        .increment(1);
}

/// Attempts counted against the throttles expire after this.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// argon2 costs CPU and memory per call: at most `slots` run at once, at most `queue`
/// more wait, and anything beyond is refused at once rather than queued without bound.
struct VerifyPool {
    slots: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    runs: AtomicU64,
}

impl VerifyPool {
    fn new(slots: usize, queue: usize) -> VerifyPool {
        VerifyPool {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            admitted: Arc::new(Semaphore::new(slots.max(1) + queue)),
            runs: AtomicU64::new(0),
        }
    }

    async fn run(
        &self,
        verify: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, ClientAuthError> {
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            count_failure("busy");
            return Err(ClientAuthError::Busy);
        };
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientAuthError::Busy)?;
        metrics::counter!(catalog::AUTH_VERIFICATIONS).increment(1);
        self.runs.fetch_add(1, Ordering::Relaxed);
        // The permits move into the blocking task: a caller that goes away (client
        // disconnected) does not free a slot while argon2 still runs.
        tokio::task::spawn_blocking(move || {
            let _held = (admitted, slot);
            verify()
        })
        .await
        .map_err(|_| ClientAuthError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_refuses_beyond_its_queue_at_once() {
        let pool = Arc::new(VerifyPool::new(1, 1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started.send(());
                    wait.recv().is_ok()
                })
                .await
            }
        });
        running.await.expect("the first verification runs");
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| true).await }
        });
        // Until the queued request holds its admission, the queue is not full yet.
        while pool.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // The slot is held and one request waits: a third is refused without waiting.
        assert!(matches!(
            pool.run(|| true).await,
            Err(ClientAuthError::Busy)
        ));
        release.send(()).expect("release");
        assert!(busy.await.expect("task").expect("ran"));
        assert!(queued.await.expect("task").expect("ran after the first"));
        assert!(pool.run(|| true).await.expect("free again"));
    }
}
