//! Cost alerts: every round, each alert's spend in its current UTC day or month is
//! priced; one that reached its threshold records a firing (once per period: the
//! firing's primary key) and queues an `alert.send` job, which posts the alert to the
//! operator's webhook, signed, with the queue's retries. The same alerts are told when
//! an agent's worker reports a failure streak ([`worker_failing`]).
//!
//! The signature is the one Nexus checks on `/webhooks/ingest`: `X-Nexus-Timestamp`
//! (Unix s) and `X-Nexus-Signature: v1=<hex HMAC-SHA256 of v1:{timestamp}:{Idempotency-Key}:{body}>`,
//! keyed with the alert's secret; `Idempotency-Key` is `{alert}:{period start}` (a
//! worker's streak: `{alert}:worker:{agent}:{host}:{streak}`), the same on every
//! retry, so a receiver can drop repeats.

use std::sync::Arc;

use chrono::{Datelike, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use nexus_proto::{SlackChannelId, TenantId};

use crate::config::Prices;
use crate::context::Context;
use crate::group_commit::SubmitError;
use crate::mirror;
use crate::queue::{Done, JobError, JobKind, Queue};
use crate::store::{
    AlertPeriod, CostAlert, Job, NewJob, Store, StoreError, UsageFilter, UsageGroup, WorkerReport,
    WorkerStreak,
};
use crate::time::now_ms;

/// The current period of `period` at `now_ms`: `[start, end)` in Unix ms.
pub fn period_bounds(period: AlertPeriod, now_ms: i64) -> Option<(i64, i64)> {
    let now = Utc.timestamp_millis_opt(now_ms).single()?;
    let start = match period {
        AlertPeriod::Day => Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0),
        AlertPeriod::Month => Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0),
    }
    .single()?;
    let end = match period {
        AlertPeriod::Day => start + chrono::Duration::days(1),
        AlertPeriod::Month => start.checked_add_months(chrono::Months::new(1))?,
    };
    Some((start.timestamp_millis(), end.timestamp_millis()))
}

/// What an alert's receiver gets, by `type`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertBody {
    /// A spend threshold reached in a period.
    CostAlert(CostAlertBody),
    /// A worker's failure streak reached its `alert_after`.
    WorkerFailing(WorkerFailingBody),
}

impl AlertBody {
    /// The alert whose webhook and Slack channel it goes to.
    fn alert_id(&self) -> Uuid {
        match self {
            AlertBody::CostAlert(b) => b.alert_id,
            AlertBody::WorkerFailing(b) => b.alert_id,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CostAlertBody {
    pub alert_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub period: AlertPeriod,
    /// RFC 3339.
    pub period_start: String,
    pub threshold_usd: f64,
    pub spend_usd: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerFailingBody {
    pub alert_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    pub host: String,
    pub consecutive_failures: u64,
    pub alert_after: u32,
    pub last_error: Option<String>,
    /// The heartbeat that reported it (RFC 3339).
    pub seen_at: String,
}

/// One round over every alert: returns how many fired. A model without a price costs
/// nothing (as in usage analytics, which name it).
pub async fn evaluate(
    store: &Store,
    queue: &Queue,
    prices: &Prices,
    now_ms: i64,
) -> Result<u32, SubmitError> {
    let mut fired = 0;
    let stored = |e: StoreError| SubmitError::Store(Arc::new(e));
    for alert in store.list_alerts(None).await.map_err(stored)? {
        let Some(bounds) = period_bounds(alert.period, now_ms) else {
            continue;
        };
        let filter = UsageFilter {
            tenant: alert.tenant_id,
            agent: alert.agent_id,
            from: bounds.0,
            to: bounds.1,
        };
        let used = store
            .usage_sums(&filter, UsageGroup::Model)
            .await
            .map_err(stored)?;
        let spend: f64 = used
            .iter()
            .filter_map(|u| Some(prices.get(&u.model)?.cost(&u.tokens)))
            .sum();
        if spend < alert.threshold_usd || store.has_fired(&alert, bounds.0).await.map_err(stored)? {
            continue;
        }
        // The job first (its dedupe key is the alert and period, so a round that dies
        // between the two queues nothing twice), then the record that ends the period.
        queue_send(queue, &alert, bounds.0, spend).await?;
        if store
            .record_firing(&alert, bounds.0, spend)
            .await
            .map_err(stored)?
        {
            tracing::info!(alert_id = %alert.id, tenant_id = %alert.tenant_id, spend, threshold = alert.threshold_usd, "cost alert fired");
            fired += 1;
        }
    }
    Ok(fired)
}

async fn queue_send(
    queue: &Queue,
    alert: &CostAlert,
    period_start: i64,
    spend: f64,
) -> Result<(), SubmitError> {
    let body = AlertBody::CostAlert(CostAlertBody {
        alert_id: alert.id,
        tenant_id: *alert.tenant_id.as_uuid(),
        agent_id: alert.agent_id.map(|a| *a.as_uuid()),
        period: alert.period,
        period_start: crate::time::rfc3339(period_start),
        threshold_usd: alert.threshold_usd,
        spend_usd: spend,
    });
    let key = format!("{}:{period_start}", alert.id);
    enqueue(queue, alert.tenant_id, key, &body).await
}

/// Queues an `alert.send` job; `dedupe_key` is also the webhook's `Idempotency-Key`.
async fn enqueue(
    queue: &Queue,
    tenant: TenantId,
    dedupe_key: String,
    body: &AlertBody,
) -> Result<(), SubmitError> {
    let job = NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "alert".into(),
        kind: JobKind::AlertSend.as_str().into(),
        dedupe_key,
        payload: serde_json::to_string(body).unwrap_or_default(),
        trace_id: None,
        max_attempts: queue.max_attempts(JobKind::AlertSend.as_str()),
        run_at: 0,
    };
    queue.enqueue(job).await.map(drop)
}

/// A worker's heartbeat (`report`), after `before` (its previous one, if any): when
/// its failure streak reaches `alert_after` (> 0) with this heartbeat, queues a
/// `worker_failing` alert to each of the tenant's alerts that covers the agent (the
/// tenant's, and the agent's own). Once per streak: the dedupe key names the last
/// heartbeat before the threshold, so a retried heartbeat queues nothing new. Returns
/// how many were queued.
pub async fn worker_failing(
    store: &Store,
    queue: &Queue,
    report: &WorkerReport,
    before: Option<WorkerStreak>,
) -> Result<usize, SubmitError> {
    let threshold = u64::from(report.alert_after);
    let was = before.map_or(0, |b| b.consecutive_failures);
    if threshold == 0 || report.consecutive_failures < threshold || was >= threshold {
        return Ok(0);
    }
    let stored = |e: StoreError| SubmitError::Store(Arc::new(e));
    let alerts: Vec<CostAlert> = store
        .list_alerts(Some(report.tenant_id))
        .await
        .map_err(stored)?
        .into_iter()
        .filter(|a| a.agent_id.is_none_or(|id| id == report.agent_id))
        .collect();
    let (agent, host) = (report.agent_id, &report.host);
    if alerts.is_empty() {
        tracing::warn!(agent_id = %agent, host, failures = report.consecutive_failures, "a worker is failing and no alert is configured: nobody was told");
        return Ok(0);
    }
    let streak = before.map_or(0, |b| b.seen_at);
    for alert in &alerts {
        let body = AlertBody::WorkerFailing(WorkerFailingBody {
            alert_id: alert.id,
            tenant_id: *report.tenant_id.as_uuid(),
            agent_id: *agent.as_uuid(),
            host: host.clone(),
            consecutive_failures: report.consecutive_failures,
            alert_after: report.alert_after,
            last_error: report.last_error.clone(),
            seen_at: crate::time::rfc3339(report.seen_at),
        });
        let key = format!("{}:worker:{agent}:{host}:{streak}", alert.id);
        enqueue(queue, report.tenant_id, key, &body).await?;
    }
    tracing::info!(agent_id = %agent, host, failures = report.consecutive_failures, alerts = alerts.len(), "worker failing: alerts queued");
    Ok(alerts.len())
}

/// `v1=<hex>` over `v1:{timestamp}:{key}:{body}`.
pub fn signature(secret: &str, timestamp: i64, key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    for part in [
        b"v1:".as_slice(),
        timestamp.to_string().as_bytes(),
        b":",
        key.as_bytes(),
        b":",
        body,
    ] {
        mac.update(part);
    }
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs an `alert.send` job: posts the body to the alert's webhook.
pub async fn send(ctx: &Context, job: &Job) -> Result<Done, JobError> {
    let body: AlertBody = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent("unparseable", format!("not an alert: {e}")))?;
    let (alert, secret) = match ctx.store.get_alert(body.alert_id(), None).await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => return Done::because("alert_removed"),
        Err(e) => return Err(JobError::transient(e.to_string())),
    };
    if let (Some(url), Some(secret)) = (&alert.webhook_url, &secret) {
        post_webhook(ctx, job, url, secret.expose()).await?;
    }
    if let Some(channel) = &alert.slack_channel {
        let channel: SlackChannelId = channel.parse().map_err(|_| {
            JobError::permanent(
                "bad_channel",
                format!("{channel:?} is not a Slack channel id"),
            )
        })?;
        mirror::post_alert(ctx, job, &channel, &slack_text(&body)).await?;
    }
    Ok(Done::default())
}

fn slack_text(body: &AlertBody) -> String {
    match body {
        AlertBody::CostAlert(b) => {
            let who = b
                .agent_id
                .map_or("The tenant".to_owned(), |a| format!("Agent {a}"));
            format!(
                ":warning: Cost alert: {who} spent ${:.2} this {} (since {}), past the ${:.2} threshold.",
                b.spend_usd,
                b.period.as_str(),
                b.period_start,
                b.threshold_usd
            )
        }
        AlertBody::WorkerFailing(b) => format!(
            ":warning: The worker of agent {} on {} has failed {} times in a row. Last error: {}",
            b.agent_id,
            b.host,
            b.consecutive_failures,
            b.last_error.as_deref().unwrap_or("none reported")
        ),
    }
}

/// The signed POST; a 5xx, 408 or 429 (or no answer) is retried, another refusal is not.
async fn post_webhook(ctx: &Context, job: &Job, url: &str, secret: &str) -> Result<(), JobError> {
    let ts = now_ms() / 1000;
    let key = &job.dedupe_key;
    let raw = job.payload.as_bytes();
    let resp = ctx
        .providers
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .header("x-nexus-timestamp", ts.to_string())
        .header("x-nexus-signature", signature(secret, ts, key, raw))
        .body(job.payload.clone())
        .send()
        .await
        .map_err(|e| JobError::transient(format!("alert webhook: {e}")))?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        s if s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408 => {
            Err(JobError::transient(format!("alert webhook answered {s}")))
        }
        s => Err(JobError::permanent(
            "refused",
            format!("alert webhook answered {s}"),
        )),
    }
}

/// How often every alert is checked.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Checks every alert each [`EVERY`] until `stop`.
pub async fn run(store: Store, queue: Arc<Queue>, prices: Arc<Prices>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = evaluate(&store, &queue, &prices, now_ms()).await {
            tracing::warn!(error = %e, "cost alerts not checked this round");
        }
    }
}
