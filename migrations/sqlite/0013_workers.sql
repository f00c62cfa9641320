-- Agent-host workers (issue 17): each `nexus worker` reports its health per agent and
-- host; the node lists them (stale past 3 × interval_s) and alerts on a failure streak.
-- Times are Unix ms; counters as the worker reports them.
CREATE TABLE workers (
    agent_id             BLOB NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    host                 TEXT NOT NULL,
    tenant_id            BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    version              TEXT NOT NULL,
    interval_s           INTEGER NOT NULL,
    started_at           INTEGER NOT NULL,
    last_scan_at         INTEGER,
    last_upload_at       INTEGER,
    sessions_seen        INTEGER NOT NULL,
    uploaded             INTEGER NOT NULL,
    queued               INTEGER NOT NULL,
    failing              INTEGER NOT NULL,
    parked               INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    alert_after          INTEGER NOT NULL,
    last_error           TEXT,
    seen_at              INTEGER NOT NULL,
    PRIMARY KEY (agent_id, host)
);
CREATE INDEX workers_by_tenant ON workers (tenant_id, agent_id, host);
