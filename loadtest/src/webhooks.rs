//! Events sent as signed provider webhooks (`deliver --via slack|clickup`)
//! instead of through the emit API: the load test signs exactly as Slack and
//! ClickUp do, so the whole webhook path of the node is measured.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::fake_clickup;
use crate::wire::stamp_text;

/// Where `--via slack|clickup` posts, and how it signs.
#[derive(Clone)]
pub enum Route {
    Slack(SlackRoute),
    Clickup(ClickUpRoute),
}

#[derive(Clone)]
pub struct SlackRoute {
    pub url: String,
    pub team: String,
    pub secret: String,
}

#[derive(Clone)]
pub struct ClickUpRoute {
    pub url: String,
    pub webhook_id: String,
    pub secret: String,
}

/// The Slack user id the load test gives an agent.
pub fn slack_user(agent: &str) -> String {
    format!("U{}", agent.replace('-', "").to_uppercase())
}

/// The (numeric) ClickUp user id the load test gives an agent: the random half of its UUID.
pub fn clickup_user(agent: &str) -> u64 {
    let bytes = uuid::Uuid::parse_str(agent).map_or([0; 16], |u| *u.as_bytes());
    let mut low = [0; 8];
    low.copy_from_slice(&bytes[8..]);
    u64::from_be_bytes(low) >> 1
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> Result<String> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
    for p in parts {
        mac.update(p);
    }
    Ok(hex::encode(mac.finalize().into_bytes()))
}

impl Route {
    /// Posts the event for `agent`; `Ok(true)` when the node accepted it.
    pub async fn post(&self, client: &reqwest::Client, agent: &str, data: &Value) -> Result<bool> {
        match self {
            Route::Slack(route) => slack_mention(client, route, agent, data).await,
            Route::Clickup(route) => clickup_task(client, route, agent, data).await,
        }
    }
}

/// A signed `message` event mentioning the agent; its text carries the stamp.
async fn slack_mention(
    client: &reqwest::Client,
    route: &SlackRoute,
    agent: &str,
    data: &Value,
) -> Result<bool> {
    let (i, t_ns) = stamp_of(data);
    let body = json!({
        "type": "event_callback", "team_id": route.team, "event_id": format!("EvLT{i}"),
        "event": {"type": "message", "channel": "CLOADTEST", "user": "ULOADTESTER",
                  "text": format!("<@{}> {}", slack_user(agent), stamp_text(i, t_ns)),
                  "ts": format!("{}.{:06}", t_ns / 1_000_000_000, i % 1_000_000)},
    })
    .to_string();
    let ts = (t_ns / 1_000_000_000).to_string();
    let signature = format!(
        "v0={}",
        hmac_hex(
            &route.secret,
            &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]
        )?
    );
    let req = client
        .post(&route.url)
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature);
    post_webhook(req, &route.url, body).await
}

/// A signed `taskCreated` for a new task assigned to the agent, named with the stamp.
async fn clickup_task(
    client: &reqwest::Client,
    route: &ClickUpRoute,
    agent: &str,
    data: &Value,
) -> Result<bool> {
    let (i, t_ns) = stamp_of(data);
    let body = json!({
        "event": "taskCreated", "webhook_id": route.webhook_id,
        "task_id": fake_clickup::task_id(clickup_user(agent), i, t_ns),
        "history_items": [{"id": format!("lt{i}"), "field": "status",
                           "user": {"id": 1, "username": "loadtester"}}],
    })
    .to_string();
    let signature = hmac_hex(&route.secret, &[body.as_bytes()])?;
    let req = client.post(&route.url).header("x-signature", signature);
    post_webhook(req, &route.url, body).await
}

async fn post_webhook(req: reqwest::RequestBuilder, url: &str, body: String) -> Result<bool> {
    let resp = req
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    match (status.as_u16(), answer["status"].as_str()) {
        (200, Some("accepted")) => Ok(true),
        _ => bail!("{url} answered {status}: {answer}"),
    }
}

/// The `(i, t_ns)` a scenario put in an event's data.
fn stamp_of(data: &Value) -> (u64, u64) {
    (
        data["i"].as_u64().unwrap_or(0),
        data["t_ns"].as_u64().unwrap_or(0),
    )
}
