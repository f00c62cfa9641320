//! Building and running a node: open storage, bind, serve until told to stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, JwtKeys, OperatorKeys};
use crate::broker::{Broker, LocalBroker, RedisBroker};
use crate::bus::{Fanout, Hub, Sessions, Upkeep};
use crate::config::{Config, DbOpts, SqliteSynchronous};
use crate::context::Context;
use crate::gateway::Gateway;
use crate::inbox::Inbox;
use crate::presence::{MemoryPresence, Presence, RedisPresence};
use crate::processors::Processors;
use crate::providers::Providers;
use crate::queue::{Processor, Queue};
use crate::quota::Quotas;
use crate::redis::Redis;
use crate::seal::SealError;
use crate::state::{AppState, Shared};
use crate::store::{Limits, Retention, SqliteSync, Store, StoreError};
use crate::time::{Clock, SystemClock};
use crate::tools::Tools;
use crate::{routes, server, telemetry};

mod gauges;
mod secrets_key;
pub use secrets_key::open_secrets;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("redis (REDIS_URL): {0}")]
    Redis(String),
    #[error("secrets key ({origin}): {source}")]
    Secrets {
        /// `NEXUS_SECRETS_KEY` or the key file: what the operator has to look at.
        origin: String,
        #[source]
        source: SealError,
    },
}

/// The signing keys: `NEXUS_JWT_SECRET` when given, else the secret this database
/// generated on its first start (so tokens survive restarts and are shared by nodes).
pub async fn jwt_keys(
    store: &Store,
    configured: Option<&str>,
    ttl: Duration,
) -> Result<JwtKeys, StoreError> {
    let generated;
    let secret = match configured {
        Some(s) => s,
        None => {
            generated = store
                .secret_setting_or_init("jwt_secret", crate::auth::secrets::generate_jwt_secret)
                .await?;
            generated.expose()
        }
    };
    Ok(JwtKeys::new(secret.as_bytes(), ttl))
}

/// What embedders and tests may add to a node.
pub struct Extras {
    /// The job queue's time (tests move a `ManualClock` by hand).
    pub clock: Arc<dyn Clock>,
    /// Processors for job kinds Nexus does not make (an embedder's or a test's own),
    /// by kind.
    pub other_jobs: HashMap<String, Arc<dyn Processor>>,
}

impl Default for Extras {
    fn default() -> Extras {
        Extras {
            clock: Arc::new(SystemClock),
            other_jobs: HashMap::new(),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Inbox writers and sweepers: stopped after the sessions, so their last acks land.
    background: TaskTracker,
    stop_background: CancellationToken,
}

impl Application {
    /// Opens and migrates the database and binds the listener; nothing is served yet.
    pub async fn build(config: Config) -> Result<Application, AppError> {
        Self::build_with(config, Extras::default()).await
    }

    /// As [`Application::build`], with a different clock or more processors (tests).
    pub async fn build_with(mut config: Config, extras: Extras) -> Result<Application, AppError> {
        let Extras { clock, other_jobs } = extras;
        // First: what the node records while starting must reach the recorder.
        let metrics = telemetry::metrics_handle();
        let providers =
            Providers::new(&config.serve.providers).map_err(|e| AppError::Config(e.to_string()))?;
        let mut store = Store::connect_with(&config.database_url, limits(&config.serve.db)).await?;
        store.migrate().await?;
        // Before serving, so this month's sessions never land in the default partition.
        store
            .ensure_session_partitions(crate::time::now_ms())
            .await?;
        open_secrets(&mut store, &config.database_url, &config.secrets_key).await?;
        let keys = jwt_keys(
            &store,
            config.jwt_secret.as_deref(),
            config.serve.token_ttl(),
        )
        .await?;
        let addr = config.serve.listen;
        let listener = listen(addr).map_err(|source| AppError::Bind { addr, source })?;
        let node_id =
            config.serve.node_id.clone().unwrap_or_else(|| {
                format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            });
        let http = &mut config.serve.http;
        http.max_connections = raise_open_file_limit(http.max_connections);
        let background = TaskTracker::new();
        let stop_background = CancellationToken::new();
        let quotas = Arc::new(Quotas::new(
            config.tiers.clone(),
            store.clone(),
            config.serve.cache_ttl,
            config.serve.inbox.ttl,
        ));
        let (hub, redis) = start_hub(
            &config,
            &store,
            &node_id,
            quotas.clone(),
            (&background, &stop_background),
        )
        .await?;
        let redis_presence = redis.is_some().then(|| hub.presence().clone());
        gauges::start(
            store.clone(),
            redis_presence,
            &background,
            stop_background.clone(),
        );
        let queue = Arc::new(Queue::new(
            store.clone(),
            clock.clone(),
            config.serve.queue.clone(),
            node_id.clone(),
        ));
        let ctx = Arc::new(Context::new(
            store.clone(),
            hub.clone(),
            providers,
            config.serve.cache_ttl,
        ));
        let shutdown = CancellationToken::new();
        let gateway = Arc::new(Gateway {
            hub: hub.clone(),
            store: store.clone(),
            keys: keys.clone(),
            ws: config.serve.ws.clone(),
            tiers: config.tiers.clone(),
            tools: Arc::new(Tools::new(
                queue.clone(),
                ctx.clone(),
                config.serve.tool_max_in_flight as usize,
            )),
            shutdown: shutdown.clone(),
            sessions: TaskTracker::new(),
        });
        let processors = Arc::new(Processors::new(ctx.clone(), other_jobs));
        queue.start(
            processors,
            config.serve.db.request_timeout,
            &background,
            stop_background.clone(),
        );
        background.spawn(crate::alerts::run(
            store.clone(),
            queue.clone(),
            config.prices.clone(),
            stop_background.clone(),
        ));
        let state = AppState(Arc::new(Shared {
            auth: Arc::new(Authenticator::new(
                store.clone(),
                keys,
                &config.serve.auth,
                config.serve.cache_ttl,
                config.serve.db.request_timeout,
            )),
            operator_keys: Arc::new(OperatorKeys::new(store.clone(), config.serve.cache_ttl)),
            store,
            hub,
            quotas,
            ctx,
            gateway,
            queue,
            clock,
            metrics,
            node_id,
            redis,
            config,
            shutdown,
        }));
        Ok(Application {
            listener,
            state,
            background,
            stop_background,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.serve.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancel to shut the node down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let Application {
            listener,
            state,
            background,
            stop_background,
        } = self;
        let shutdown = state.shutdown.clone();
        tracing::info!(
            addr = %listener.local_addr().map_err(AppError::Serve)?,
            node_id = %state.node_id,
            backend = ?state.store.backend(),
            "nexus listening"
        );
        let app = routes::router(state.clone());
        let limits = state.config.serve.http.clone();
        let grace = Duration::from_secs(state.config.serve.shutdown_grace_s);
        let served = server::serve(listener, app, limits, shutdown.clone());
        // Requests in flight at the signal get the grace period to finish.
        let overdue = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = served => {}
            () = overdue => tracing::warn!("requests still in flight after the grace period"),
        }
        // Sessions saw the same signal and are closing with 1012.
        let sessions = &state.gateway.sessions;
        sessions.close();
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            tracing::warn!(
                open = state.hub.sessions().len(),
                "sessions still open after the grace period"
            );
        }
        stop_background.cancel();
        background.close();
        if tokio::time::timeout(grace, background.wait())
            .await
            .is_err()
        {
            tracing::warn!("background work still running after the grace period");
        }
        // After the upkeep stopped, so no renewal brings the node back.
        if let Err(e) = state.hub.presence().leave().await {
            tracing::warn!(error = %e, "could not take this node out of presence; it expires");
        }
        state.store.close().await;
        if let Some(redis) = &state.redis {
            redis.quit().await;
        }
        tracing::info!("nexus stopped");
        Ok(())
    }
}

/// The store's waits and SQLite's commits, from `serve`'s `--db-*` and
/// `--sqlite-synchronous` flags.
fn limits(db: &DbOpts) -> Limits {
    Limits {
        acquire: db.acquire_timeout,
        statement: Some(db.statement_timeout),
        idle_in_transaction: Some(db.idle_in_transaction_timeout),
        sqlite_sync: match db.sqlite_synchronous {
            SqliteSynchronous::Full => SqliteSync::Full,
            SqliteSynchronous::Normal => SqliteSync::Normal,
        },
    }
}

/// Binds with a deep accept queue. `TcpListener::bind` asks for 128: a burst of agents
/// reconnecting (a node restart, a deploy) overflowed it and each dropped SYN cost its
/// agent a one-second retransmit (measured: 2,000 connects took 1.1 s instead of 0.3 s).
/// The kernel caps the depth at `net.core.somaxconn`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Sockets need file descriptors: take every one the hard limit allows, and say
/// how many agents this node can therefore hold. Returns the connection cap, lowered
/// to that capacity: past it `accept` would fail, and refusing is cleaner.
fn raise_open_file_limit(max_connections: u32) -> u32 {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            return max_connections;
        }
    };
    // Left for the database, Redis and the listener itself.
    let capacity = limit.saturating_sub(100).max(1);
    tracing::info!(
        open_files = limit,
        socket_capacity = capacity,
        "open-file limit raised to the hard limit"
    );
    if u64::from(max_connections) > capacity {
        tracing::warn!(
            max_connections,
            socket_capacity = capacity,
            "--max-connections lowered to what the open-file limit allows"
        );
    }
    max_connections.min(u32::try_from(capacity).unwrap_or(u32::MAX))
}

type Links = (Arc<dyn Presence>, Arc<dyn Broker>, Option<Redis>);

/// Presence and the broker: in process, or in Redis when `REDIS_URL` is set.
/// The inbox writer, presence, the broker and their upkeep, behind the hub.
async fn start_hub(
    config: &Config,
    store: &Store,
    node_id: &str,
    quotas: Arc<Quotas>,
    (background, stop): (&TaskTracker, &CancellationToken),
) -> Result<(Arc<Hub>, Option<Redis>), AppError> {
    let inbox_opts = &config.serve.inbox;
    let retention = Retention {
        ttl_ms: inbox_opts.ttl.as_millis().try_into().unwrap_or(i64::MAX),
        cap: inbox_opts.cap.max(1),
        audit_ttl_ms: inbox_opts
            .audit_retention
            .as_millis()
            .try_into()
            .unwrap_or(i64::MAX),
        session_ttl_ms: inbox_opts
            .session_retention
            .map(|d| d.as_millis().try_into().unwrap_or(i64::MAX)),
    };
    let sessions = Arc::new(Sessions::default());
    let fanout = Arc::new(Fanout::new(sessions.clone()));
    let inbox = Inbox::start(
        store.clone(),
        retention,
        fanout.clone(),
        config.serve.db.request_timeout,
        background,
        stop.clone(),
    );
    let (presence, broker, redis) =
        node_links(config, node_id, &sessions, background, stop).await?;
    let upkeep = Upkeep {
        node_id: node_id.to_owned(),
        store: store.clone(),
        sessions,
        presence,
        broker,
        reconcile_every: config.serve.reconcile_interval,
    };
    background.spawn(upkeep.clone().route(fanout, stop.clone()));
    background.spawn(upkeep.clone().maintain(stop.clone()));
    background.spawn(upkeep.clone().reconcile(stop.clone()));
    background.spawn(upkeep.clone().push_logs(stop.clone()));
    Ok((Arc::new(Hub::new(inbox, upkeep, quotas)), redis))
}

async fn node_links(
    config: &Config,
    node_id: &str,
    sessions: &Arc<Sessions>,
    background: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Links, AppError> {
    let ttl = config.serve.ws.presence_ttl;
    let Some(url) = &config.serve.redis_url else {
        let broker = LocalBroker::new(node_id.to_owned(), sessions.clone());
        return Ok((Arc::new(MemoryPresence::new(ttl)), Arc::new(broker), None));
    };
    let redis_err = |e: &dyn std::fmt::Display| AppError::Redis(e.to_string());
    let redis = Redis::connect(url, node_id)
        .await
        .map_err(|e| redis_err(&e))?;
    let presence = RedisPresence::start(
        redis.clone(),
        node_id.to_owned(),
        ttl,
        config.serve.node_ttl,
    )
    .await
    .map_err(|e| redis_err(&e))?;
    let presence = Arc::new(presence);
    presence.rebuild_after_reconnects();
    let broker = RedisBroker::start(
        redis.clone(),
        node_id,
        sessions.clone(),
        background,
        stop.clone(),
    )
    .await
    .map_err(|e| redis_err(&e))?;
    tracing::info!(node_id, "cluster profile: presence and routing in redis");
    Ok((presence, Arc::new(broker), Some(redis)))
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
