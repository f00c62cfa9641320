//! Operator actions on cost alerts: add (with a generated signing secret for its
//! webhook, shown once) and remove. Each leaves an audit record.

use nexus_proto::{AgentId, SlackChannelId, TenantId};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{Actor, AdminError, agent_of};
use crate::auth::secrets;
use crate::store::{AlertPeriod, CostAlert, NewAlert, Secret, Store};

pub struct AlertSpec {
    pub tenant: TenantId,
    pub agent: Option<AgentId>,
    pub period: AlertPeriod,
    pub threshold_usd: f64,
    pub webhook_url: Option<String>,
    pub slack_channel: Option<String>,
}

/// An alert with its webhook's signing secret: returned at creation only. No `Debug`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedAlert {
    #[serde(flatten)]
    pub alert: CostAlert,
    /// Verifies `X-Nexus-Signature` on the alert's webhook calls; `null` without a webhook.
    pub webhook_secret: Option<String>,
}

pub async fn add_alert(
    store: &Store,
    actor: &Actor,
    spec: AlertSpec,
) -> Result<CreatedAlert, AdminError> {
    if !(spec.threshold_usd.is_finite() && spec.threshold_usd > 0.0) {
        return Err(AdminError::field(
            "threshold_usd",
            "must be a number above 0",
        ));
    }
    if spec.webhook_url.is_none() && spec.slack_channel.is_none() {
        return Err(AdminError::field(
            "webhook_url",
            "give a webhook_url, a slack_channel, or both",
        ));
    }
    if let Some(url) = &spec.webhook_url {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(AdminError::field("webhook_url", "must be an http(s) URL"));
        }
    }
    if let Some(channel) = &spec.slack_channel
        && channel.parse::<SlackChannelId>().is_err()
    {
        return Err(AdminError::field(
            "slack_channel",
            "must be a Slack channel id, like C0123ABCD",
        ));
    }
    store.get_tenant(spec.tenant).await?;
    if let Some(agent) = spec.agent {
        agent_of(store, spec.tenant, agent).await?;
    }
    let secret = spec
        .webhook_url
        .as_ref()
        .map(|_| secrets::generate_client_secret());
    let new = NewAlert {
        tenant_id: spec.tenant,
        agent_id: spec.agent,
        period: spec.period,
        threshold_usd: spec.threshold_usd,
        webhook_url: spec.webhook_url,
        webhook_secret: secret.clone().map(Secret::new),
        slack_channel: spec.slack_channel,
    };
    let alert = store.create_alert(&new).await?;
    let details = json!({
        "agent_id": alert.agent_id, "period": alert.period, "threshold_usd": alert.threshold_usd,
        "webhook_url": alert.webhook_url, "slack_channel": alert.slack_channel,
    });
    let audit = actor.audit(Some(alert.tenant_id), "alert.create", alert.id, details);
    store.record_audit(&audit).await?;
    Ok(CreatedAlert {
        alert,
        webhook_secret: secret,
    })
}

/// Removes an alert; `within` (a tenant-bound caller's tenant) limits which.
pub async fn remove_alert(
    store: &Store,
    actor: &Actor,
    id: Uuid,
    within: Option<TenantId>,
) -> Result<(), AdminError> {
    let (alert, _) = store.get_alert(id, within).await?;
    store.delete_alert(id, within).await?;
    let audit = actor.audit(Some(alert.tenant_id), "alert.remove", id, json!({}));
    store.record_audit(&audit).await?;
    Ok(())
}
