-- Tenant-wide events are stored once, in the tenant's log (DESIGN §8, issue 19). Each
-- agent's stream is its own inbox merged with the log from its subscription point,
-- in one seq space per agent:
-- * tenants.log_head: the log's newest n (a tenant append bumps it under the row lock;
--   on SQLite every write is serialized anyway, so the two never interleave in a tenant);
-- * agent_cursors.mark: the log's head when the agent's newest own event was appended
--   (or when the agent was created); prev_mark: the mark before that append;
-- * inbox.mark / prev_mark: the same for each own event.
-- An agent's newest seq is last_seq + (log_head - mark); a log entry n sits after the
-- agent's own events with mark < n, before those with mark >= n.
ALTER TABLE tenants ADD COLUMN log_head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_cursors ADD COLUMN mark INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_cursors ADD COLUMN prev_mark INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN mark INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN prev_mark INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tenant_log (
    tenant_id  BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    n          INTEGER NOT NULL,
    event_id   BLOB NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    trace_id   TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, n)
) WITHOUT ROWID;

CREATE INDEX tenant_log_expires ON tenant_log (expires_at);
