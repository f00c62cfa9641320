//! Cost alerts: every round, each alert's spend in its current UTC day or month is
//! priced; one that reached its threshold records a firing (once per period: the
//! firing's primary key) and queues an `alert.send` job, which posts the alert to the
//! operator's webhook, signed, with the queue's retries.
//!
//! The signature is the one Nexus checks on `/webhooks/ingest`: `X-Nexus-Timestamp`
//! (Unix s) and `X-Nexus-Signature: v1=<hex HMAC-SHA256 of v1:{timestamp}:{Idempotency-Key}:{body}>`,
//! keyed with the alert's secret; `Idempotency-Key` is `{alert}:{period start}`, the
//! same on every retry, so a receiver can drop repeats.

use std::sync::Arc;

use chrono::{Datelike, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use nexus_proto::SlackChannelId;

use crate::config::Prices;
use crate::context::Context;
use crate::group_commit::SubmitError;
use crate::mirror;
use crate::queue::{Done, JobError, JobKind, Queue};
use crate::store::{
    AlertPeriod, CostAlert, Job, NewJob, Store, StoreError, UsageFilter, UsageGroup,
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

/// What an alert's receiver gets.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlertBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub alert_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub period: AlertPeriod,
    /// RFC 3339.
    pub period_start: String,
    pub threshold_usd: f64,
    pub spend_usd: f64,
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
    let body = AlertBody {
        kind: "cost_alert".into(),
        alert_id: alert.id,
        tenant_id: *alert.tenant_id.as_uuid(),
        agent_id: alert.agent_id.map(|a| *a.as_uuid()),
        period: alert.period,
        period_start: crate::time::rfc3339(period_start),
        threshold_usd: alert.threshold_usd,
        spend_usd: spend,
    };
    let job = NewJob {
        tenant_id: alert.tenant_id,
        source_id: None,
        source: "alert".into(),
        kind: JobKind::AlertSend.as_str().into(),
        dedupe_key: format!("{}:{period_start}", alert.id),
        payload: serde_json::to_string(&body).unwrap_or_default(),
        trace_id: None,
        max_attempts: queue.max_attempts(JobKind::AlertSend.as_str()),
        run_at: 0,
    };
    queue.enqueue(job).await.map(drop)
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
    let (alert, secret) = match ctx.store.get_alert(body.alert_id, None).await {
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
        let who = body
            .agent_id
            .map_or("The tenant".to_owned(), |a| format!("Agent {a}"));
        let text = format!(
            ":warning: Cost alert: {who} spent ${:.2} this {} (since {}), past the ${:.2} threshold.",
            body.spend_usd,
            body.period.as_str(),
            body.period_start,
            body.threshold_usd
        );
        mirror::post_alert(ctx, job, &channel, &text).await?;
    }
    Ok(Done::default())
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
