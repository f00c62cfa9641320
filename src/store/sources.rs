//! Webhook sources: who may post to which endpoint, with which secret, for which tenant.
//!
//! Secrets are kept in the database (verifying an HMAC needs the key itself), sealed
//! (see [`super::secrets`]), and handed out opened in [`Secret`], which never prints
//! and never serializes.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use nexus_proto::{AgentId, EventType, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::audit::insert_audit;
use super::dialect::{can_match, on_pool, on_writer};
use super::secrets::source_slot;
use super::{NewAudit, Result, Store, StoreError};
use crate::time::now_ms;

/// A credential held for verifying or calling: `Debug` shows nothing, no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// So command-line flags taking secrets parse straight into a `Secret`.
impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Secret, Infallible> {
        Ok(Secret::new(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Slack,
    Clickup,
    Ingest,
    Putio,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Slack => "slack",
            SourceKind::Clickup => "clickup",
            SourceKind::Ingest => "ingest",
            SourceKind::Putio => "putio",
        }
    }

    fn parse(s: &str) -> Result<SourceKind> {
        match s {
            "slack" => Ok(SourceKind::Slack),
            "clickup" => Ok(SourceKind::Clickup),
            "ingest" => Ok(SourceKind::Ingest),
            "putio" => Ok(SourceKind::Putio),
            other => Err(StoreError::Corrupt(format!("source kind {other:?}"))),
        }
    }
}

/// What a put.io source is found by: the SHA-256 of the token in its callback URL, so
/// the token itself is never compared, indexed or logged.
pub fn putio_external_id(token: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// Where an ingest or put.io source's payloads go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestRule {
    pub to_agent: Option<AgentId>,
    pub to_alias: Option<String>,
    pub event: EventType,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Source {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: SourceKind,
    /// Slack team id, ClickUp webhook id, the ingest source's name, or `sha256:` and the
    /// hex SHA-256 of a put.io source's callback token (what it is found by).
    pub external_id: String,
    #[serde(skip)]
    pub secret: Secret,
    #[serde(skip)]
    pub api_token: Option<Secret>,
    /// The signing secret this one replaced, accepted until the instant (Unix ms).
    #[serde(skip)]
    pub previous_secret: Option<(Secret, i64)>,
    /// Until when the previous signing secret is still accepted (after a rotation).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_ms_rfc3339"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<i64>,
    pub bot_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<IngestRule>,
    /// The source's own endpoint (a put.io source's carries its token: `{token}`).
    pub url_path: String,
    /// put.io: the callback path with its token, shown only when the source is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_path: Option<String>,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl Source {
    /// The signing secret a rotation replaced, if it is still accepted at `now_ms`.
    pub fn previous_secret_at(&self, now_ms: i64) -> Option<&Secret> {
        self.previous_secret
            .as_ref()
            .filter(|(_, until)| now_ms < *until)
            .map(|(secret, _)| secret)
    }
}

/// What a rotation replaces; `None` keeps it.
pub struct SourceRotation {
    /// The new signing secret; the current one stays accepted until `grace_until`.
    pub secret: Option<Secret>,
    /// The new API token, used from now on.
    pub api_token: Option<Secret>,
    /// Unix ms.
    pub grace_until: i64,
}

pub struct NewSource {
    pub tenant_id: TenantId,
    pub kind: SourceKind,
    pub external_id: String,
    pub secret: Secret,
    pub api_token: Option<Secret>,
    pub bot_user: Option<String>,
    pub rule: Option<IngestRule>,
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: Uuid,
    tenant_id: Uuid,
    kind: String,
    external_id: String,
    secret: String,
    api_token: Option<String>,
    bot_user: Option<String>,
    rule_agent: Option<Uuid>,
    rule_alias: Option<String>,
    rule_event: Option<String>,
    created_at: i64,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
}

const COLS: &str = "id, tenant_id, kind, external_id, secret, api_token, bot_user, rule_agent, rule_alias, rule_event, created_at, previous_secret, previous_until";

impl Store {
    /// The source of a row, its secrets opened.
    fn source(&self, r: SourceRow) -> Result<Source> {
        let kind = SourceKind::parse(&r.kind)?;
        let rule = match kind {
            SourceKind::Ingest | SourceKind::Putio => Some(IngestRule {
                to_agent: r.rule_agent.map(AgentId::from_uuid),
                to_alias: r.rule_alias,
                event: r
                    .rule_event
                    .as_deref()
                    .unwrap_or("wake_up")
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("rule event {:?}", r.rule_event)))?,
            }),
            _ => None,
        };
        let previous_secret = match (r.previous_secret, r.previous_until) {
            (Some(sealed), Some(until)) => Some((
                self.open(&source_slot(r.id, "previous_secret"), &sealed)?,
                until,
            )),
            _ => None,
        };
        Ok(Source {
            previous_secret_until: previous_secret.as_ref().map(|(_, until)| *until),
            previous_secret,
            url_path: match kind {
                SourceKind::Putio => "/webhooks/putio/{token}".to_owned(),
                _ => format!("/webhooks/{}/{}", kind.as_str(), r.id),
            },
            callback_path: None,
            id: r.id,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            kind,
            external_id: r.external_id,
            secret: self.open(&source_slot(r.id, "secret"), &r.secret)?,
            api_token: r
                .api_token
                .map(|t| self.open(&source_slot(r.id, "api_token"), &t))
                .transpose()?,
            bot_user: r.bot_user,
            rule,
            created_at: r.created_at,
        })
    }
}

impl Store {
    pub async fn create_source(&self, new: NewSource) -> Result<Source> {
        let id = Uuid::now_v7();
        let rule = new.rule.as_ref();
        let secret = self.seal(&source_slot(id, "secret"), &new.secret)?;
        let api_token = new
            .api_token
            .as_ref()
            .map(|t| self.seal(&source_slot(id, "api_token"), t))
            .transpose()?;
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO sources (id, tenant_id, kind, external_id, secret, api_token, bot_user, \
                 rule_agent, rule_alias, rule_event, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(*new.tenant_id.as_uuid())
            .bind(new.kind.as_str())
            .bind(new.external_id.clone())
            .bind(secret.clone())
            .bind(api_token.clone())
            .bind(new.bot_user.clone())
            .bind(rule.and_then(|r| r.to_agent).map(|a| *a.as_uuid()))
            .bind(rule.and_then(|r| r.to_alias.clone()))
            .bind(rule.map(|r| r.event.as_str()))
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("tenant or agent"),
            _ => super::conflict_as("source")(e),
        })?;
        self.get_source(id).await
    }

    pub async fn get_source(&self, id: Uuid) -> Result<Source> {
        let sql = format!("SELECT {COLS} FROM sources WHERE id = $1");
        let row: Option<SourceRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await
        })?;
        self.source(row.ok_or(StoreError::NotFound("source"))?)
    }

    /// The source of `kind` known by its external id (team id, webhook id).
    pub async fn find_source(&self, kind: SourceKind, external_id: &str) -> Result<Option<Source>> {
        if !can_match(external_id) {
            return Ok(None);
        }
        let sql = format!("SELECT {COLS} FROM sources WHERE kind = $1 AND external_id = $2");
        let row: Option<SourceRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(kind.as_str())
                .bind(external_id.to_owned())
                .fetch_optional(p)
                .await
        })?;
        row.map(|r| self.source(r)).transpose()
    }

    /// Every source of `kind`, optionally of one tenant.
    pub async fn list_sources(
        &self,
        kind: Option<SourceKind>,
        tenant: Option<TenantId>,
    ) -> Result<Vec<Source>> {
        let sql = format!(
            "SELECT {COLS} FROM sources WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR tenant_id = $2) ORDER BY id"
        );
        let rows: Vec<SourceRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(kind.map(SourceKind::as_str))
                .bind(tenant.map(|t| *t.as_uuid()))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(|r| self.source(r)).collect()
    }

    /// A page of the tenant's sources in id order after `after`.
    pub async fn list_sources_page(
        &self,
        tenant: TenantId,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Source>> {
        let sql = format!(
            "SELECT {COLS} FROM sources WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows: Vec<SourceRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(|r| self.source(r)).collect()
    }

    /// Replaces the source's signing secret (keeping the current one as the previous,
    /// accepted until the grace ends) and/or its API token, recording `audit`, in one
    /// transaction.
    pub async fn rotate_source(
        &self,
        id: Uuid,
        rotation: &SourceRotation,
        audit: &NewAudit,
    ) -> Result<Source> {
        let current = self.get_source(id).await?;
        let (secret, previous) = match &rotation.secret {
            Some(new) => (
                Some(self.seal(&source_slot(id, "secret"), new)?),
                Some(self.seal(&source_slot(id, "previous_secret"), &current.secret)?),
            ),
            None => (None, None),
        };
        let token = rotation
            .api_token
            .as_ref()
            .map(|t| self.seal(&source_slot(id, "api_token"), t))
            .transpose()?;
        let until = previous.as_ref().map(|_| rotation.grace_until);
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE sources SET secret = COALESCE($2, secret), api_token = COALESCE($3, api_token), \
                 previous_secret = COALESCE($4, previous_secret), previous_until = COALESCE($5, previous_until) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(secret.clone())
            .bind(token.clone())
            .bind(previous.clone())
            .bind(until)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
        });
        self.get_source(id).await
    }

    pub async fn remove_source(&self, id: Uuid) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query("DELETE FROM sources WHERE id = $1")
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound("source"));
        }
        Ok(())
    }
}

impl Store {
    /// Active agents behind `@alias` in a tenant (case-insensitive), for ingest rules.
    pub async fn alias_agent_ids(&self, tenant: TenantId, alias: &str) -> Result<Vec<AgentId>> {
        let ids: Vec<Uuid> = on_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT m.agent_id FROM agent_aliases a \
                 JOIN agent_alias_members m ON m.alias_id = a.id \
                 JOIN agents g ON g.id = m.agent_id \
                 WHERE a.tenant_id = $1 AND LOWER(a.alias) = LOWER($2) AND g.status = 'active' \
                 ORDER BY m.agent_id",
            )
            .bind(*tenant.as_uuid())
            .bind(alias.trim_start_matches('@').to_owned())
            .fetch_all(p)
            .await
        })?;
        Ok(ids.into_iter().map(AgentId::from_uuid).collect())
    }
}
