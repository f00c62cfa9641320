-- Cost alerts (issue 16): a tenant's (or one agent's) spend per UTC day or month
-- crossing a threshold is told once per period, to a signed webhook and/or a Slack
-- channel. `webhook_secret` is sealed like every stored secret.
CREATE TABLE cost_alerts (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    agent_id       BLOB REFERENCES agents(id) ON DELETE CASCADE,
    period         TEXT NOT NULL CHECK (period IN ('day', 'month')),
    threshold_usd  REAL NOT NULL,
    webhook_url    TEXT,
    webhook_secret TEXT,
    slack_channel  TEXT,
    created_at     INTEGER NOT NULL,
    CHECK (webhook_url IS NOT NULL OR slack_channel IS NOT NULL)
);
CREATE INDEX cost_alerts_by_tenant ON cost_alerts (tenant_id);

-- One row per alert per period it fired in: the primary key is what makes it once.
CREATE TABLE cost_alert_firings (
    alert_id     BLOB NOT NULL REFERENCES cost_alerts(id) ON DELETE CASCADE,
    period_start INTEGER NOT NULL,
    tenant_id    BLOB NOT NULL,
    spend_usd    REAL NOT NULL,
    fired_at     INTEGER NOT NULL,
    PRIMARY KEY (alert_id, period_start)
);
CREATE INDEX cost_alert_firings_by_tenant ON cost_alert_firings (tenant_id, fired_at);
