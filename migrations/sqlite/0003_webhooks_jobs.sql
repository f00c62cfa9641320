-- Webhook sources registered per tenant, and the durable job queue (DESIGN §10–§11).

CREATE TABLE sources (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('slack', 'clickup', 'ingest')),
    -- Slack team id, ClickUp webhook id, or the ingest source's name.
    external_id   TEXT NOT NULL,
    -- Signing secret (Slack), webhook secret (ClickUp), HMAC key or bearer token (ingest).
    secret        TEXT NOT NULL,
    api_token     TEXT,
    bot_user      TEXT,
    rule_agent    BLOB REFERENCES agents(id) ON DELETE CASCADE,
    rule_alias    TEXT,
    rule_event    TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (kind, external_id)
);

CREATE TABLE jobs (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    source_id   BLOB REFERENCES sources(id) ON DELETE SET NULL,
    -- The source kind: slack, clickup, ingest (or internal producers such as tool).
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at      INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    reason_code TEXT,
    trace_id    TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (source, dedupe_key)
);

CREATE INDEX jobs_claim ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_until);

-- Every failed attempt's error, for the dead-letter view.
CREATE TABLE job_attempts (
    job_id  BLOB NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    error   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
