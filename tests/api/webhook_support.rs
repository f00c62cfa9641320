//! Sources and independently computed signatures for webhook tests.

use hmac::{Hmac, Mac};
use nexus::admin::SourceSpec;
use nexus::store::{Source, SourceKind};
use nexus_proto::{AgentId, TenantId};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::TestApp;

pub const SLACK_SECRET: &str = "slack-signing-secret-0001";
pub const CLICKUP_SECRET: &str = "clickup-webhook-secret-01";
pub const INGEST_SECRET: &str = "ingest-shared-secret-0001";

pub fn hmac_hex(key: &str, msg: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    m.update(msg);
    hex::encode(m.finalize().into_bytes())
}

pub fn slack_signature(secret: &str, ts: i64, body: &str) -> String {
    format!(
        "v0={}",
        hmac_hex(secret, format!("v0:{ts}:{body}").as_bytes())
    )
}

pub fn spec(tenant: TenantId, kind: SourceKind, external_id: &str, secret: &str) -> SourceSpec {
    SourceSpec {
        tenant,
        kind,
        external_id: Some(external_id.into()),
        secret: Some(secret.into()),
        api_token: None,
        bot_user: None,
        to_agent: None,
        to_alias: None,
        event: None,
    }
}

impl TestApp {
    pub async fn slack_source(&self, tenant: TenantId, team: &str) -> Source {
        nexus::admin::add_source(
            &self.state.store,
            &nexus::admin::Actor::Cli,
            spec(tenant, SourceKind::Slack, team, SLACK_SECRET),
        )
        .await
        .expect("slack source")
    }

    pub async fn clickup_source(&self, tenant: TenantId, webhook_id: &str) -> Source {
        nexus::admin::add_source(
            &self.state.store,
            &nexus::admin::Actor::Cli,
            spec(tenant, SourceKind::Clickup, webhook_id, CLICKUP_SECRET),
        )
        .await
        .expect("clickup source")
    }

    pub async fn ingest_source(
        &self,
        tenant: TenantId,
        to_agent: Option<AgentId>,
        to_alias: Option<&str>,
    ) -> Source {
        let mut s = spec(tenant, SourceKind::Ingest, "putio", INGEST_SECRET);
        s.to_agent = to_agent;
        s.to_alias = to_alias.map(str::to_owned);
        nexus::admin::add_source(&self.state.store, &nexus::admin::Actor::Cli, s)
            .await
            .expect("ingest source")
    }

    /// A Slack delivery signed at `ts` with `secret`.
    pub async fn post_slack(
        &self,
        path: &str,
        body: &str,
        ts: i64,
        secret: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", slack_signature(secret, ts, body))
            .body(body.to_owned())
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A ClickUp webhook signed with [`CLICKUP_SECRET`] (`X-Signature`: hex HMAC of the body).
    pub async fn post_clickup(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let sig = hmac_hex(CLICKUP_SECRET, body.as_bytes());
        self.post_signed(path, "x-signature", sig, body).await
    }

    pub async fn post_signed(
        &self,
        path: &str,
        header: &str,
        value: String,
        body: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header(header, value)
            .body(body.to_owned())
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// An ingest delivery signed as the README says: `v1=` HMAC of
    /// `v1:{ts}:{Idempotency-Key or empty}:{body}` at `ts`.
    pub async fn post_ingest(
        &self,
        path: &str,
        key: Option<&str>,
        ts: i64,
        body: &str,
    ) -> (StatusCode, Value) {
        let resp = self.post_ingest_response(path, key, ts, body).await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// As [`TestApp::post_ingest`], the whole response (its headers too).
    pub async fn post_ingest_response(
        &self,
        path: &str,
        key: Option<&str>,
        ts: i64,
        body: &str,
    ) -> reqwest::Response {
        let signed = format!("v1:{ts}:{}:{body}", key.unwrap_or_default());
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-nexus-timestamp", ts.to_string())
            .header(
                "x-nexus-signature",
                format!("v1={}", hmac_hex(INGEST_SECRET, signed.as_bytes())),
            )
            .body(body.to_owned());
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send().await.expect("send")
    }

    /// How many jobs `GET /api/jobs` lists (up to a page of 500).
    pub async fn job_count(&self) -> usize {
        let key = self.operator_key("read", None).await;
        let page = self.get_json("/api/jobs?limit=500", &key).await;
        page["jobs"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .len()
    }
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn slack_event(event_id: &str, team: &str) -> String {
    serde_json::json!({
        "type": "event_callback",
        "team_id": team,
        "event_id": event_id,
        "event": {"type": "message", "channel": "C1", "user": "U1", "text": "hello", "ts": "1.000100"}
    })
    .to_string()
}
