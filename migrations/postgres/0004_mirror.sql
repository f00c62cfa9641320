-- The mirror (DESIGN §12): what Nexus wrote to Slack and ClickUp, the Slack channels
-- it has seen created, and a claim so only one worker opens a task's Slack thread.

-- Every message, comment and status change Nexus made through a provider API. Echoes
-- of these in webhooks are not news; a retried tool finds its finished steps by op_key.
CREATE TABLE provider_writes (
    tenant_id   UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider    TEXT NOT NULL CHECK (provider IN ('clickup', 'slack')),
    -- A Slack message ts (channel:ts) or a ClickUp comment id.
    external_id TEXT NOT NULL,
    op_key      TEXT UNIQUE,
    result      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider, external_id)
);

CREATE TABLE slack_channels (
    tenant_id  UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel_id)
);

ALTER TABLE task_mappings ADD COLUMN thread_claim_until BIGINT;
