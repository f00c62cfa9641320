-- Agent sessions (DESIGN §13): what each agent did and the tokens it used. Times are
-- Unix ms. The three session tables are partitioned by month of `started_at`: the
-- sweeper creates partitions months ahead and drops those past --session-retention;
-- rows outside every monthly partition (a backfill of old sessions) land in DEFAULT.
-- `session_ids` keeps ids unique across partitions and finds a session's partition.
CREATE TABLE session_ids (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id   UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL
);
CREATE INDEX session_ids_by_date ON session_ids (started_at);

CREATE TABLE sessions (
    id               UUID NOT NULL,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id         UUID NOT NULL,
    source           TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    ended_at         BIGINT NOT NULL,
    -- As the uploader reported it; usage analytics price tokens themselves.
    cost_usd         DOUBLE PRECISION,
    metadata         TEXT,
    parts            INTEGER NOT NULL,
    transcript_bytes BIGINT NOT NULL DEFAULT 0,
    status           TEXT NOT NULL CHECK (status IN ('uploading', 'complete')),
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE sessions_default PARTITION OF sessions DEFAULT;
CREATE INDEX sessions_by_agent ON sessions (tenant_id, agent_id, started_at);
CREATE INDEX sessions_by_tenant ON sessions (tenant_id, started_at);

-- The transcript, gzip-compressed, in parts of at most 1 MiB decoded (one for a
-- session uploaded whole).
CREATE TABLE session_parts (
    session_id UUID NOT NULL,
    tenant_id  UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    n          INTEGER NOT NULL,
    bytes      BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (session_id, n, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE session_parts_default PARTITION OF session_parts DEFAULT;

-- Tokens per model per session: what usage analytics sum.
CREATE TABLE session_usage (
    session_id         UUID NOT NULL,
    tenant_id          UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id           UUID NOT NULL,
    started_at         BIGINT NOT NULL,
    model              TEXT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    PRIMARY KEY (session_id, model, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE session_usage_default PARTITION OF session_usage DEFAULT;
CREATE INDEX session_usage_by_tenant ON session_usage (tenant_id, started_at);
