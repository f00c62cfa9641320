-- Foundation: tenants, agents and how external identities reach them.
-- Ids are UUIDv7 (native uuid); times are Unix milliseconds.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    tier       TEXT NOT NULL DEFAULT 'standard',
    created_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    client_id          TEXT NOT NULL UNIQUE,
    client_secret_hash TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at         BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE agent_identities (
    agent_id         UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider         TEXT NOT NULL CHECK (provider IN ('clickup', 'slack')),
    external_user_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, provider, external_user_id),
    UNIQUE (tenant_id, provider, external_user_id)
);

CREATE TABLE agent_aliases (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    alias      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, alias)
);

CREATE TABLE agent_alias_members (
    alias_id UUID NOT NULL REFERENCES agent_aliases(id) ON DELETE CASCADE,
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    PRIMARY KEY (alias_id, agent_id)
);

CREATE TABLE project_mappings (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    clickup_list_id  TEXT NOT NULL,
    slack_channel_id TEXT NOT NULL,
    open_threads     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, clickup_list_id),
    UNIQUE (tenant_id, slack_channel_id)
);

-- The mapping's default agents: who gets a task nobody is assigned to.
CREATE TABLE project_mapping_agents (
    mapping_id UUID NOT NULL REFERENCES project_mappings(id) ON DELETE CASCADE,
    agent_id   UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    PRIMARY KEY (mapping_id, agent_id)
);

CREATE TABLE task_mappings (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    project_mapping_id UUID NOT NULL REFERENCES project_mappings(id) ON DELETE CASCADE,
    clickup_task_id    TEXT NOT NULL,
    slack_channel_id   TEXT NOT NULL,
    slack_thread_ts    TEXT,
    title              TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (tenant_id, clickup_task_id),
    UNIQUE (tenant_id, slack_channel_id, slack_thread_ts)
);

-- The task's agents; a row exists once the agent got its task_assigned.
CREATE TABLE task_mapping_agents (
    task_mapping_id UUID NOT NULL REFERENCES task_mappings(id) ON DELETE CASCADE,
    agent_id        UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    assigned_at     BIGINT NOT NULL,
    PRIMARY KEY (task_mapping_id, agent_id)
);

CREATE TABLE operator_keys (
    id         UUID PRIMARY KEY,
    tenant_id  UUID REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
