-- Agent-host workers (issue 17): each `nexus worker` reports its health per agent and
-- host; the node lists them (stale past 3 × interval_s) and alerts on a failure streak.
-- Times are Unix ms; counters as the worker reports them.
CREATE TABLE workers (
    agent_id             UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    host                 TEXT NOT NULL,
    tenant_id            UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    version              TEXT NOT NULL,
    interval_s           BIGINT NOT NULL,
    started_at           BIGINT NOT NULL,
    last_scan_at         BIGINT,
    last_upload_at       BIGINT,
    sessions_seen        BIGINT NOT NULL,
    uploaded             BIGINT NOT NULL,
    queued               BIGINT NOT NULL,
    failing              BIGINT NOT NULL,
    parked               BIGINT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    alert_after          BIGINT NOT NULL,
    last_error           TEXT,
    seen_at              BIGINT NOT NULL,
    PRIMARY KEY (agent_id, host)
);
CREATE INDEX workers_by_tenant ON workers (tenant_id, agent_id, host);
