//! Configuration: command-line flags with environment fallbacks.
//! Every option here is listed in the README's configuration table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::{Args, ValueEnum};

mod jobs;
mod origin;
mod prices;
mod tiers;
pub use jobs::{ProviderOpts, QueueOpts};
pub use origin::cors_origin;
pub use prices::{Price, Prices, PricesError, Tokens};
pub use tiers::{Rate, Tier, Tiers, TiersError, check_tier_name};

/// A configuration file's text (`--tiers`, `--prices`); the error names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct FileError {
    path: String,
    #[source]
    source: std::io::Error,
}

fn read_file(path: &std::path::Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError {
        path: path.display().to_string(),
        source,
    })
}

/// Longest lifetime of an access token, seconds (24 h): tokens cannot be recalled.
pub const MAX_TOKEN_TTL_S: u64 = 86_400;

/// Options every command shares: where the data lives and how to log.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// `sqlite://FILE` (embedded profile, created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://nexus.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// The file holding the key that seals secrets in the database; created (mode 0600)
    /// with a fresh key on a database that has none yet. Default: beside a SQLite file
    /// (`FILE.key`); PostgreSQL needs this or `NEXUS_SECRETS_KEY`.
    #[arg(long, env = "NEXUS_SECRETS_KEY_FILE", global = true)]
    pub secrets_key_file: Option<PathBuf>,

    /// A TOML file defining the tenant tiers and their limits (README "Tiers and
    /// quotas"); unset = the built-in `free`, `standard` and `enterprise`.
    #[arg(long, env = "NEXUS_TIERS_FILE", global = true)]
    pub tiers: Option<PathBuf>,

    /// A TOML file of model prices, USD per million tokens (README "Usage and prices"),
    /// replacing the built-in table; read at start, applied to past usage too.
    #[arg(long, env = "NEXUS_PRICES_FILE", global = true)]
    pub prices: Option<PathBuf>,

    /// Log format on stderr (stdout is kept for command output).
    #[arg(long, env = "NEXUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Options of `nexus serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeOpts {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "NEXUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis for presence and cross-node routing (cluster profile); unset = in-process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// This node's id in presence and logs; random when unset. A node restarting under
    /// the same id clears what its previous run left in presence.
    #[arg(long, env = "NEXUS_NODE_ID")]
    pub node_id: Option<String>,

    /// Cluster: a node whose liveness key has not been renewed for this long is taken for
    /// dead and its agents shown offline everywhere (renewed every third of it).
    #[arg(long, env = "NEXUS_NODE_TTL", default_value = "15s", value_parser = duration)]
    pub node_ttl: Duration,

    /// Lifetime of issued access tokens, in seconds (at most 86400: 24 h).
    #[arg(long, env = "NEXUS_TOKEN_TTL_S", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_TTL_S))]
    pub token_ttl_s: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "NEXUS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Agents and operator keys read on hot paths are trusted this long (0 = always read):
    /// a change made by another process (agent disabled, key revoked) applies within it.
    #[arg(long, env = "NEXUS_CACHE_TTL", default_value = "2s", value_parser = duration)]
    pub cache_ttl: Duration,

    /// How long shutdown waits for in-flight work before exiting, in seconds.
    #[arg(long, env = "NEXUS_SHUTDOWN_GRACE_S", default_value_t = 10)]
    pub shutdown_grace_s: u64,

    /// How often live sessions are compared with their inboxes, so an announcement
    /// lost between nodes (a Redis reconnect) costs at most this long. Also done after
    /// every (re)subscribe.
    #[arg(long, env = "NEXUS_RECONCILE_INTERVAL", default_value = "10s", value_parser = duration)]
    pub reconcile_interval: Duration,

    /// Tool requests one agent may have unanswered on this node (queued or running);
    /// more are answered `too_many_requests` at once, without being queued.
    #[arg(long, env = "NEXUS_TOOL_MAX_IN_FLIGHT", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tool_max_in_flight: u32,

    #[command(flatten)]
    pub db: DbOpts,

    #[command(flatten)]
    pub auth: AuthOpts,

    #[command(flatten)]
    pub http: HttpOpts,

    #[command(flatten)]
    pub ws: WsOpts,

    #[command(flatten)]
    pub inbox: InboxOpts,

    #[command(flatten)]
    pub queue: QueueOpts,

    #[command(flatten)]
    pub providers: ProviderOpts,
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// How long `serve` waits on the database. A database that hangs (or a network that
/// drops its packets) costs a request at most `request_timeout`, answered 503, instead
/// of a sender's own timeout. Commands (`nexus migrate`, `nexus queue …`) are not bound
/// by these: they may legitimately run longer.
#[derive(Debug, Clone, Args)]
pub struct DbOpts {
    /// Longest wait for a pooled connection, opening one included (503 past it).
    #[arg(long = "db-acquire-timeout", env = "NEXUS_DB_ACQUIRE_TIMEOUT", default_value = "1s", value_parser = timeout)]
    pub acquire_timeout: Duration,

    /// Longest one statement may run: PostgreSQL's `statement_timeout` on every
    /// connection, SQLite's busy timeout. Migrations run without it.
    #[arg(long = "db-statement-timeout", env = "NEXUS_DB_STATEMENT_TIMEOUT", default_value = "1500ms", value_parser = timeout)]
    pub statement_timeout: Duration,

    /// PostgreSQL ends a session left idle inside a transaction this long (a node that
    /// vanished mid-transaction), so its row locks do not hold up the other nodes.
    #[arg(long = "db-idle-in-transaction-timeout", env = "NEXUS_DB_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "5s", value_parser = timeout)]
    pub idle_in_transaction_timeout: Duration,

    /// Longest a webhook, API or token request, or one group commit, waits on storage
    /// before it is answered 503 with `Retry-After`: the bound that holds even when the
    /// database never answers (its statement timeout is enforced by the server).
    #[arg(long = "db-request-timeout", env = "NEXUS_DB_REQUEST_TIMEOUT", default_value = "1800ms", value_parser = timeout)]
    pub request_timeout: Duration,

    /// SQLite only: `full` fsyncs every commit before the answer, so a webhook answered
    /// 2xx survives a power cut; `normal` survives a process crash but may lose the
    /// last commits to a power cut, for more webhooks per second.
    #[arg(long = "sqlite-synchronous", env = "NEXUS_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSynchronous::Full)]
    pub sqlite_synchronous: SqliteSynchronous,
}

/// `--sqlite-synchronous`: SQLite's `PRAGMA synchronous` on the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

/// `POST /auth/token` abuse limits.
#[derive(Debug, Clone, Args)]
pub struct AuthOpts {
    /// Token requests waiting for an argon2 slot (one slot per core); beyond this a
    /// request is answered 503 with Retry-After at once instead of queueing.
    #[arg(
        long = "auth-verify-queue",
        env = "NEXUS_AUTH_VERIFY_QUEUE",
        default_value_t = 64
    )]
    pub verify_queue: usize,

    /// Failed attempts per client id *from one address* in a minute before that pair
    /// is refused (429): a stranger elsewhere cannot lock the client out.
    #[arg(
        long = "auth-max-failures",
        env = "NEXUS_AUTH_MAX_FAILURES",
        default_value_t = 5
    )]
    pub max_failures: u32,

    /// Failed attempts from one address in a minute, whatever the client ids, before
    /// the address is refused (429).
    #[arg(
        long = "auth-max-failures-per-address",
        env = "NEXUS_AUTH_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub max_failures_per_address: u32,
}

/// A timeout: zero would close every connection at once, so it is refused.
fn timeout(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// Limits on HTTP connections, so slow or idle clients cannot hold the listener.
#[derive(Debug, Clone, Args)]
pub struct HttpOpts {
    /// A request's line and headers must arrive within this of the connection opening
    /// or of the request's first byte; the connection is closed otherwise.
    #[arg(long, env = "NEXUS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = timeout)]
    pub header_read_timeout: Duration,

    /// A request's body must arrive within this of its headers (408 otherwise).
    #[arg(long, env = "NEXUS_BODY_READ_TIMEOUT", default_value = "30s", value_parser = timeout)]
    pub body_read_timeout: Duration,

    /// A kept-alive connection idle this long between requests is closed.
    #[arg(long, env = "NEXUS_KEEP_ALIVE_TIMEOUT", default_value = "60s", value_parser = timeout)]
    pub keep_alive_timeout: Duration,

    /// Connections open at once, agent sockets included; more are answered 503 and
    /// closed. Lowered to what the open-file limit allows.
    #[arg(long, env = "NEXUS_MAX_CONNECTIONS", default_value_t = 25_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Web origins whose pages may call this node (CORS), comma-separated exact origins
    /// such as `https://ops.example.com`; none by default: no CORS headers at all.
    #[arg(long, env = "NEXUS_CORS_ORIGINS", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_origins: Vec<HeaderValue>,
}

/// Agent socket tuning. Durations take units: `30s`, `500ms`, `5m`.
#[derive(Debug, Clone, Args)]
pub struct WsOpts {
    /// The server pings each socket this often.
    #[arg(long = "ws-ping-interval", env = "NEXUS_WS_PING_INTERVAL", default_value = "30s", value_parser = duration)]
    pub ping_interval: Duration,

    /// A socket silent this long after a ping is closed (4008); one that takes no frame
    /// for this long is closed as a slow consumer (4009).
    #[arg(long = "ws-pong-timeout", env = "NEXUS_WS_PONG_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub pong_timeout: Duration,

    /// An agent's upgrade must be authorized and answered within this (503 otherwise).
    #[arg(long = "ws-handshake-timeout", env = "NEXUS_WS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = timeout)]
    pub handshake_timeout: Duration,

    /// Largest frame an agent may send, in bytes (close 1009 beyond).
    #[arg(long = "ws-max-message-bytes", env = "NEXUS_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Events queued for one socket before it counts as a slow consumer (close 4009).
    #[arg(
        long = "ws-outbound-queue",
        env = "NEXUS_WS_OUTBOUND_QUEUE",
        default_value_t = 1024
    )]
    pub outbound_queue: usize,

    /// Frames per second an agent may send (bursts of twice that); excess frames get an error.
    #[arg(
        long = "ws-inbound-rate",
        env = "NEXUS_WS_INBOUND_RATE",
        default_value_t = 50
    )]
    pub inbound_rate: u32,

    /// `token_expiring` is sent this long before the session's token expires.
    #[arg(long = "ws-token-warning", env = "NEXUS_WS_TOKEN_WARNING", default_value = "60s", value_parser = duration)]
    pub token_warning: Duration,

    /// After expiry a socket without a `refresh` gets this much grace, then close 4001.
    #[arg(long = "ws-token-grace", env = "NEXUS_WS_TOKEN_GRACE", default_value = "5s", value_parser = duration)]
    pub token_grace: Duration,

    /// Read buffer per socket, in bytes: kept for the socket's life, so it is sized for the
    /// small frames agents send (a larger frame grows it to fit; measured −0.8 KiB per
    /// idle socket against 1024).
    #[arg(
        long = "ws-read-buffer-bytes",
        env = "NEXUS_WS_READ_BUFFER_BYTES",
        default_value_t = 256
    )]
    pub read_buffer_bytes: usize,

    /// Presence entries live this long past an agent's last sign of life.
    #[arg(long = "presence-ttl", env = "NEXUS_PRESENCE_TTL", default_value = "300s", value_parser = duration)]
    pub presence_ttl: Duration,
}

/// Durable inbox retention (DESIGN §8).
#[derive(Debug, Clone, Args)]
pub struct InboxOpts {
    /// Events older than this are deleted, delivered or not.
    #[arg(long = "inbox-ttl", env = "NEXUS_INBOX_TTL", default_value = "7days", value_parser = duration)]
    pub ttl: Duration,

    /// At most this many events are kept per agent; older ones go first.
    #[arg(long = "inbox-cap", env = "NEXUS_INBOX_CAP", default_value_t = 10_000)]
    pub cap: u64,

    /// Sessions (transcripts and usage) that started longer ago than this are deleted
    /// (PostgreSQL: whole monthly partitions dropped); unset = kept.
    #[arg(long = "session-retention", env = "NEXUS_SESSION_RETENTION", value_parser = duration)]
    pub session_retention: Option<Duration>,

    /// Audit log entries older than this are deleted (by the same sweep as the inbox).
    #[arg(long = "audit-retention", env = "NEXUS_AUDIT_RETENTION", default_value = "90days", value_parser = duration)]
    pub audit_retention: Duration,
}

impl ServeOpts {
    /// The defaults (plus any `NEXUS_*` environment overrides), as `nexus serve` would
    /// start with no flags. Tests and embedders start from this.
    pub fn defaults() -> ServeOpts {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeOpts,
        }
        <Wrapper as clap::Parser>::parse_from(["nexus"]).serve
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_s)
    }
}

/// Everything `serve` needs, gathered so tests can build a node without a command line.
/// No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub serve: ServeOpts,
    /// From `NEXUS_JWT_SECRET` only: secrets don't belong in argv, where `ps` shows them.
    pub jwt_secret: Option<String>,
    /// Where the key sealing stored secrets comes from.
    pub secrets_key: SecretsKeyOpts,
    /// Tenant tiers and their limits (`--tiers`).
    pub tiers: Arc<Tiers>,
    /// Model prices for usage analytics (`--prices`).
    pub prices: Arc<Prices>,
}

/// A definitions file given to `serve` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Tiers(#[from] TiersError),
    #[error(transparent)]
    Prices(#[from] PricesError),
}

impl Config {
    pub fn new(global: GlobalOpts, serve: ServeOpts) -> Result<Config, ConfigError> {
        Ok(Config {
            secrets_key: SecretsKeyOpts::new(&global),
            tiers: Arc::new(Tiers::load(global.tiers.as_deref())?),
            prices: Arc::new(Prices::load(global.prices.as_deref())?),
            database_url: global.database_url,
            serve,
            jwt_secret: jwt_secret_from_env(),
        })
    }
}

/// The key sealing stored secrets: `NEXUS_SECRETS_KEY` (environment only, as any
/// secret), else the key file (`--secrets-key-file`, else beside a SQLite file).
#[derive(Clone, Default)]
pub struct SecretsKeyOpts {
    pub key: Option<String>,
    pub file: Option<PathBuf>,
}

impl SecretsKeyOpts {
    pub fn new(global: &GlobalOpts) -> SecretsKeyOpts {
        SecretsKeyOpts {
            key: env_secret("NEXUS_SECRETS_KEY"),
            file: global.secrets_key_file.clone(),
        }
    }
}

pub fn jwt_secret_from_env() -> Option<String> {
    env_secret("NEXUS_JWT_SECRET")
}

/// A secret from the environment; set but empty counts as unset.
pub fn env_secret(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.is_empty())
}
