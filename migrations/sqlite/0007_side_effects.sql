-- Writes to Slack and ClickUp, at most once (DESIGN §12): a row is 'pending' from just
-- before the provider is called until its result is recorded ('done'). An attempt that
-- finds a 'pending' row another attempt left behind looks for the write at the provider
-- before writing again. The attempt holding a pending row (job_id, lease_owner) owns it
-- while that job's lease lasts: the row is also the claim on the write.
CREATE TABLE side_effects (
    op_key      TEXT PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    job_id      BLOB,
    lease_owner TEXT,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    result      TEXT,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX side_effects_age ON side_effects (updated_at);

INSERT INTO side_effects (op_key, tenant_id, state, result, started_at, updated_at)
SELECT op_key, tenant_id, 'done', result, created_at, created_at FROM provider_writes
WHERE op_key IS NOT NULL;

-- The thread claim is now the pending side effect that opens the thread.
ALTER TABLE task_mappings DROP COLUMN thread_claim_until;
