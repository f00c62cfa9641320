-- The operator surface (REST for tenants and jobs): a tenant can be suspended, and a
-- queued job cancelled.

-- 'suspended': its agents get no token and no socket, its webhooks are answered 200
-- and kept as dead jobs with reason 'tenant_suspended' (see the README).
ALTER TABLE tenants ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'suspended'));

-- SQLite cannot change a CHECK constraint: the jobs table is rebuilt with 'cancelled'
-- allowed. Dropping the old table deletes its attempts (ON DELETE CASCADE), so they
-- are kept aside and put back.
CREATE TABLE jobs_new (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    source_id   BLOB REFERENCES sources(id) ON DELETE SET NULL,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
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
INSERT INTO jobs_new (id, tenant_id, source_id, source, kind, dedupe_key, payload, status,
    attempts, max_attempts, run_at, lease_owner, lease_until, last_error, reason_code,
    trace_id, created_at, finished_at)
SELECT id, tenant_id, source_id, source, kind, dedupe_key, payload, status,
    attempts, max_attempts, run_at, lease_owner, lease_until, last_error, reason_code,
    trace_id, created_at, finished_at FROM jobs;
CREATE TEMP TABLE job_attempts_kept AS SELECT * FROM job_attempts;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
INSERT INTO job_attempts (job_id, attempt, error, at)
SELECT job_id, attempt, error, at FROM job_attempts_kept;
DROP TABLE job_attempts_kept;
CREATE INDEX jobs_claim ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_until);
