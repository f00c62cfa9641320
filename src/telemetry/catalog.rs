//! Every metric the node emits: its name (the one constant the code records with),
//! type, labels and `# HELP` text. [`register`] describes them all and gives each a
//! zero series at start, so a fresh node's `/metrics` lists them before anything
//! happens; the README's metric table is [`markdown_table`] (a test keeps them equal),
//! and `deploy/` is checked against a fresh node's page.

use nexus_proto::{ErrorCode, EventType, close};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

// Agent sockets.
pub const WS_CONNECTIONS: &str = "nexus_ws_connections";
pub const TENANT_WS_CONNECTIONS: &str = "nexus_tenant_ws_connections";
pub const WS_CONNECTS: &str = "nexus_ws_connects_total";
pub const WS_DISCONNECTS: &str = "nexus_ws_disconnects_total";
pub const SLOW_CONSUMERS: &str = "nexus_slow_consumers_total";
pub const WS_FRAME_ERRORS: &str = "nexus_ws_frame_errors_total";
pub const EVENTS_DELIVERED: &str = "nexus_events_delivered_total";
pub const ACCEPT_TO_DELIVER: &str = "nexus_accept_to_deliver_seconds";
// Inboxes.
pub const INBOX_APPENDED: &str = "nexus_inbox_appended_total";
pub const INBOX_BATCH_SECONDS: &str = "nexus_inbox_batch_seconds";
pub const INBOX_GAPS: &str = "nexus_inbox_gaps_total";
pub const INBOX_LAG_MAX: &str = "nexus_inbox_lag_max";
// Authentication.
pub const TOKENS_ISSUED: &str = "nexus_tokens_issued_total";
pub const AUTH_FAILURES: &str = "nexus_auth_failures_total";
pub const AUTH_VERIFICATIONS: &str = "nexus_auth_verifications_total";
// Webhooks and the job queue.
pub const WEBHOOKS: &str = "nexus_webhooks_total";
pub const WEBHOOKS_REJECTED: &str = "nexus_webhooks_rejected_total";
pub const WEBHOOKS_DROPPED: &str = "nexus_webhooks_dropped_total";
pub const QUOTA_REFUSALS: &str = "nexus_quota_refusals_total";
pub const QUEUE_DEPTH: &str = "nexus_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "nexus_queue_oldest_age_seconds";
pub const JOB_SECONDS: &str = "nexus_job_seconds";
pub const JOB_FAILURES: &str = "nexus_job_failures_total";
pub const JOBS_DEAD: &str = "nexus_jobs_dead_total";
// HTTP.
pub const CONNECTIONS_OPEN: &str = "nexus_connections_open";
pub const CONNECTIONS_REFUSED: &str = "nexus_connections_refused_total";
pub const HTTP_TIMEOUTS: &str = "nexus_http_timeouts_total";
pub const HTTP_PANICS: &str = "nexus_http_panics_total";
// Storage and Redis.
pub const DEPENDENCY_UP: &str = "nexus_dependency_up";
pub const DATABASE_ERRORS: &str = "nexus_database_errors_total";
pub const DATABASE_TIMEOUTS: &str = "nexus_database_timeouts_total";
pub const DATABASE_RETRIES: &str = "nexus_database_retries_total";
pub const REDIS_ERRORS: &str = "nexus_redis_errors_total";
pub const REDIS_RECONNECTS: &str = "nexus_redis_reconnects_total";

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, in the README's order. Gauges read from the database are the same on
/// every node of a cluster: aggregate them with `max`, not `sum`.
pub const ALL: &[Metric] = &[
    m(
        WS_CONNECTIONS,
        Gauge,
        &[],
        "Agent sockets open on this node.",
    ),
    m(
        TENANT_WS_CONNECTIONS,
        Gauge,
        &["tenant"],
        "Agent sockets open on this node, by tenant id (sum over nodes for the tenant's total).",
    ),
    m(
        WS_CONNECTS,
        Counter,
        &[],
        "Agent sockets opened on this node.",
    ),
    m(
        WS_DISCONNECTS,
        Counter,
        &["reason"],
        "Agent sockets closed on this node, by close reason; slow_consumer is close 4009 (the agent did not read fast enough), gone a peer that vanished without a close.",
    ),
    m(
        SLOW_CONSUMERS,
        Counter,
        &[],
        "Sockets closed because their outbound queue (--ws-outbound-queue) filled; also counted in nexus_ws_disconnects_total{reason=slow_consumer}, with those that stopped reading.",
    ),
    m(
        WS_FRAME_ERRORS,
        Counter,
        &["code"],
        "Agent frames answered with an error event, by error code.",
    ),
    m(
        EVENTS_DELIVERED,
        Counter,
        &["type"],
        "Events written to agents' sockets on this node, by event type.",
    ),
    m(
        ACCEPT_TO_DELIVER,
        Histogram,
        &[],
        "Seconds from an event's commit to the agent's inbox until it is written to the agent's socket (an event replayed after a reconnect counts with its whole wait).",
    ),
    m(
        INBOX_APPENDED,
        Counter,
        &[],
        "Events appended to agents' inboxes by this node.",
    ),
    m(
        INBOX_BATCH_SECONDS,
        Histogram,
        &[],
        "Seconds one batched inbox append transaction took.",
    ),
    m(
        INBOX_GAPS,
        Counter,
        &[],
        "gap events sent: an agent resumed past what inbox retention kept.",
    ),
    m(
        INBOX_LAG_MAX,
        Gauge,
        &["tenant"],
        "Largest committed seq minus acked seq among the tenant's active agents (events one agent has not acknowledged), read from the database every 5 s.",
    ),
    m(
        TOKENS_ISSUED,
        Counter,
        &[],
        "Access tokens issued by POST /auth/token.",
    ),
    m(
        AUTH_FAILURES,
        Counter,
        &["endpoint", "reason"],
        "Refused authentications: endpoint token is POST /auth/token (reason unknown_client, wrong_secret, agent_disabled, tenant_suspended, throttled or busy), endpoint agents the socket upgrade (the 401's error code: unauthorized, token_expired, invalid_token, agent_disabled, token_revoked).",
    ),
    m(
        AUTH_VERIFICATIONS,
        Counter,
        &[],
        "argon2 client secret verifications run.",
    ),
    m(
        WEBHOOKS,
        Counter,
        &["source", "outcome"],
        "Webhooks answered 2xx, by source kind and outcome (accepted, duplicate, verified, ignored).",
    ),
    m(
        WEBHOOKS_REJECTED,
        Counter,
        &["source", "reason"],
        "Webhooks refused, by source kind and reason (bad_signature, unknown_source, malformed, too_large, unavailable, internal).",
    ),
    m(
        WEBHOOKS_DROPPED,
        Counter,
        &["source", "reason"],
        "Webhooks answered 200 but kept as dead jobs instead of processed, by source kind and reason (tenant_suspended: replay them once the tenant is resumed).",
    ),
    m(
        QUOTA_REFUSALS,
        Counter,
        &["tenant", "quota"],
        "Requests refused by the tenant's tier, by quota: agents (403 on creation), sockets (close 4029), events (429 on emit), webhooks (429, per source).",
    ),
    m(
        QUEUE_DEPTH,
        Gauge,
        &["kind", "status"],
        "Jobs by kind and status (queued, running, done, dead: dead letters, cancelled: by an operator), read from the database every 5 s.",
    ),
    m(
        QUEUE_OLDEST_AGE,
        Gauge,
        &["kind"],
        "Seconds the oldest queued job of the kind has been due without a worker taking it (0 when none is due), read from the database every 5 s.",
    ),
    m(
        JOB_SECONDS,
        Histogram,
        &["kind"],
        "Seconds one job attempt took, by kind.",
    ),
    m(
        JOB_FAILURES,
        Counter,
        &["kind"],
        "Job attempts that failed (to be retried or dead-lettered), by kind.",
    ),
    m(
        JOBS_DEAD,
        Counter,
        &["kind"],
        "Jobs dead-lettered by this node's workers (retries exhausted or a permanent error), by kind.",
    ),
    m(
        CONNECTIONS_OPEN,
        Gauge,
        &[],
        "TCP connections open on this node, agent sockets included.",
    ),
    m(
        CONNECTIONS_REFUSED,
        Counter,
        &[],
        "Connections refused because --max-connections were open.",
    ),
    m(
        HTTP_TIMEOUTS,
        Counter,
        &["phase"],
        "Requests given up for slowness, by phase (header, body, ws_handshake).",
    ),
    m(
        HTTP_PANICS,
        Counter,
        &[],
        "Handlers that panicked (answered 500).",
    ),
    m(
        DEPENDENCY_UP,
        Gauge,
        &["dependency"],
        "1 when this node reached the dependency (database; redis in the cluster profile) at its last check, 0 when not; checked every 5 s.",
    ),
    m(
        DATABASE_ERRORS,
        Counter,
        &[],
        "Storage errors answered 503 or 500.",
    ),
    m(
        DATABASE_TIMEOUTS,
        Counter,
        &["what"],
        "Storage waits given up after --db-request-timeout, by what waited (api, token, webhook, group_commit).",
    ),
    m(
        DATABASE_RETRIES,
        Counter,
        &["op"],
        "Transactions retried after the database aborted them (deadlock or serialization), by operation.",
    ),
    m(
        REDIS_ERRORS,
        Counter,
        &[],
        "Redis errors (connection errors and failed commands).",
    ),
    m(REDIS_RECONNECTS, Counter, &[], "Redis reconnections."),
];

/// Bucket bounds (seconds) of every histogram: 1 ms to 1 min, so `histogram_quantile`
/// gives p99 over a whole cluster.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The metric `name` names, if it is one of ours.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// Describes every metric and registers a zero series for each label-free one and for
/// the label values known here. Labels known only at run time (tenants, job kinds)
/// get theirs from their owners: the queue, the gauge refresher, the sessions.
pub fn register() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
        if m.labels.is_empty() {
            zero(m, &[]);
        }
    }
    let closes = [
        close::NORMAL,
        close::PROTOCOL_ERROR,
        close::POLICY_VIOLATION,
        close::MESSAGE_TOO_BIG,
        close::SERVICE_RESTART,
        close::TOKEN_EXPIRED,
        close::AGENT_DISABLED,
        close::IDLE_TIMEOUT,
        close::SLOW_CONSUMER,
        close::SUPERSEDED,
        close::TENANT_SUSPENDED,
    ];
    for reason in closes.map(close::reason).into_iter().chain(["gone"]) {
        zero_with(WS_DISCONNECTS, &[("reason", reason)]);
    }
    for ty in EventType::ALL {
        zero_with(EVENTS_DELIVERED, &[("type", ty.as_str())]);
    }
    let codes = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidFields,
        ErrorCode::RateLimited,
        ErrorCode::InvalidToken,
        ErrorCode::Internal,
    ];
    for code in codes {
        zero_with(WS_FRAME_ERRORS, &[("code", code.as_str())]);
    }
    register_closed_sets();
}

/// Label values that are a small fixed set in the code that records them.
fn register_closed_sets() {
    for phase in ["header", "body", "ws_handshake"] {
        zero_with(HTTP_TIMEOUTS, &[("phase", phase)]);
    }
    let token_reasons = [
        "unknown_client",
        "wrong_secret",
        "agent_disabled",
        "tenant_suspended",
        "throttled",
        "busy",
    ];
    for reason in token_reasons {
        zero_with(AUTH_FAILURES, &[("endpoint", "token"), ("reason", reason)]);
    }
    let socket_reasons = [
        "unauthorized",
        "token_expired",
        "invalid_token",
        "agent_disabled",
        "token_revoked",
    ];
    for reason in socket_reasons {
        zero_with(AUTH_FAILURES, &[("endpoint", "agents"), ("reason", reason)]);
    }
    for source in ["slack", "clickup", "ingest", "putio"] {
        for outcome in ["accepted", "duplicate", "verified", "ignored"] {
            zero_with(WEBHOOKS, &[("source", source), ("outcome", outcome)]);
        }
        let reasons = [
            "bad_signature",
            "unknown_source",
            "malformed",
            "too_large",
            "unavailable",
            "internal",
        ];
        for reason in reasons {
            zero_with(WEBHOOKS_REJECTED, &[("source", source), ("reason", reason)]);
        }
        zero_with(
            WEBHOOKS_DROPPED,
            &[("source", source), ("reason", "tenant_suspended")],
        );
    }
    for what in ["api", "token", "webhook", "group_commit"] {
        zero_with(DATABASE_TIMEOUTS, &[("what", what)]);
    }
    for op in ["append_inbox", "save_acks"] {
        zero_with(DATABASE_RETRIES, &[("op", op)]);
    }
}

/// Registers the zero series of `name` with these labels (the metric must be ours).
pub fn zero_with(name: &'static str, labels: &[(&'static str, &'static str)]) {
    if let Some(m) = find(name) {
        zero(m, labels);
    }
}

fn zero(m: &Metric, labels: &[(&'static str, &'static str)]) {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, *v))
        .collect();
    // Registering the handle is enough: the exporter renders it with value 0.
    match m.kind {
        Kind::Counter => {
            let _ = metrics::counter!(m.name, labels);
        }
        Kind::Gauge => {
            let _ = metrics::gauge!(m.name, labels);
        }
        Kind::Histogram => {
            let _ = metrics::histogram!(m.name, labels);
        }
    }
}

/// The README's metric table (between its `metrics:begin`/`metrics:end` markers).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for m in ALL {
        let labels = if m.labels.is_empty() {
            "—".to_owned()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            labels,
            m.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests;
