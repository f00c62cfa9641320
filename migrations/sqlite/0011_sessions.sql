-- Agent sessions (DESIGN §13): what each agent did and the tokens it used. Times are
-- Unix ms. One table each, indexed by date (PostgreSQL partitions them by month).
-- `session_ids` mirrors PostgreSQL's, where it keeps ids unique across partitions.
CREATE TABLE session_ids (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id   BLOB NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL
);
CREATE INDEX session_ids_by_date ON session_ids (started_at);

CREATE TABLE sessions (
    id               BLOB NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id         BLOB NOT NULL,
    source           TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER NOT NULL,
    -- As the uploader reported it; usage analytics price tokens themselves.
    cost_usd         REAL,
    metadata         TEXT,
    parts            INTEGER NOT NULL,
    transcript_bytes INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL CHECK (status IN ('uploading', 'complete')),
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (id, started_at)
);
CREATE INDEX sessions_by_agent ON sessions (tenant_id, agent_id, started_at);
CREATE INDEX sessions_by_tenant ON sessions (tenant_id, started_at);
CREATE INDEX sessions_by_date ON sessions (started_at);

-- The transcript, gzip-compressed, in parts of at most 1 MiB decoded.
CREATE TABLE session_parts (
    session_id BLOB NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (session_id, n, started_at)
);
CREATE INDEX session_parts_by_date ON session_parts (started_at);

-- Tokens per model per session: what usage analytics sum.
CREATE TABLE session_usage (
    session_id         BLOB NOT NULL,
    tenant_id          BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id           BLOB NOT NULL,
    started_at         INTEGER NOT NULL,
    model              TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    PRIMARY KEY (session_id, model, started_at)
);
CREATE INDEX session_usage_by_tenant ON session_usage (tenant_id, started_at);
