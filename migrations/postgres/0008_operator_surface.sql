-- The operator surface (REST for tenants and jobs): a tenant can be suspended, and a
-- queued job cancelled.

-- 'suspended': its agents get no token and no socket, its webhooks are answered 200
-- and kept as dead jobs with reason 'tenant_suspended' (see the README).
ALTER TABLE tenants ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'suspended'));

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled'));
