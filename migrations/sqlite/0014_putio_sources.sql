-- put.io sources: the kind 'putio' is allowed. Its external_id is the SHA-256 of the
-- token in its callback URL (the token itself is the sealed secret).

-- SQLite cannot change a CHECK constraint: the sources table is rebuilt. Dropping the
-- old table sets jobs.source_id to NULL (ON DELETE SET NULL), so the links are kept
-- aside and put back.
CREATE TABLE sources_new (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('slack', 'clickup', 'ingest', 'putio')),
    external_id   TEXT NOT NULL,
    secret        TEXT NOT NULL,
    api_token     TEXT,
    bot_user      TEXT,
    rule_agent    BLOB REFERENCES agents(id) ON DELETE CASCADE,
    rule_alias    TEXT,
    rule_event    TEXT,
    created_at    INTEGER NOT NULL,
    previous_secret TEXT,
    previous_until  INTEGER,
    UNIQUE (kind, external_id)
);
INSERT INTO sources_new (id, tenant_id, kind, external_id, secret, api_token, bot_user,
    rule_agent, rule_alias, rule_event, created_at, previous_secret, previous_until)
SELECT id, tenant_id, kind, external_id, secret, api_token, bot_user,
    rule_agent, rule_alias, rule_event, created_at, previous_secret, previous_until FROM sources;
CREATE TEMP TABLE job_sources_kept AS SELECT id, source_id FROM jobs WHERE source_id IS NOT NULL;
DROP TABLE sources;
ALTER TABLE sources_new RENAME TO sources;
UPDATE jobs SET source_id = (SELECT k.source_id FROM job_sources_kept k WHERE k.id = jobs.id)
WHERE id IN (SELECT id FROM job_sources_kept);
DROP TABLE job_sources_kept;
