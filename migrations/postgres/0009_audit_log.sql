-- Every operator action, by whom (the operator key, or the CLI), on what, when. No
-- foreign keys: the record of a deleted tenant or revoked key outlives them. Kept for
-- --audit-retention.
CREATE TABLE audit_log (
    id           UUID PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_key_id UUID,
    actor        TEXT NOT NULL,
    tenant_id    UUID,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    details      TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
