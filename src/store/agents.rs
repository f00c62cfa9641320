//! Agents, their OAuth2 client credentials and the external identities that reach them.

use nexus_proto::{AgentId, ClickUpUserId, Seq, SlackUserId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::audit::insert_audit;
use super::dialect::{self, can_match, on_pool, on_writer};
use super::inbox::HEAD_SEQ;
use super::{Cursor, NewAudit, Provider, Result, Store, StoreError, TenantStatus};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Active,
    Disabled,
}

impl AgentStatus {
    fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(AgentStatus::Active),
            "disabled" => Ok(AgentStatus::Disabled),
            other => Err(StoreError::Corrupt(format!("agent status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub client_id: String,
    pub status: AgentStatus,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Tokens issued before this instant (Unix ms) are refused; 0 when never revoked.
    #[serde(skip)]
    pub tokens_valid_after: i64,
}

impl Agent {
    /// Whether a token issued at `issued_at_ms` (Unix ms) is still honoured.
    pub fn accepts_token_issued_at(&self, issued_at_ms: i64) -> bool {
        issued_at_ms >= self.tokens_valid_after
    }
}

/// Which agents a listing shows; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub status: Option<AgentStatus>,
    /// Names starting with this (case-sensitive).
    pub name_prefix: Option<String>,
}

/// What `PATCH /api/agents/{id}` changes: `None` keeps a field; for the users,
/// `Some(None)` removes the agent's identity at that provider.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub clickup_user: Option<Option<ClickUpUserId>>,
    pub slack_user: Option<Option<SlackUserId>>,
}

/// One column of an agent an operator changes.
#[derive(Clone, Copy)]
enum Change<'a> {
    Status(AgentStatus),
    SecretHash(&'a str),
    TokensValidAfter(i64),
}

/// An agent to insert: the caller has already generated and hashed its secret.
pub struct NewAgent {
    pub tenant_id: TenantId,
    pub name: String,
    pub client_id: String,
    pub client_secret_hash: String,
    pub clickup_user: Option<ClickUpUserId>,
    pub slack_user: Option<SlackUserId>,
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    client_id: String,
    status: String,
    created_at: i64,
    tokens_valid_after: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> Result<Self> {
        Ok(Agent {
            id: AgentId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            name: r.name,
            client_id: r.client_id,
            status: AgentStatus::parse(&r.status)?,
            created_at: r.created_at,
            tokens_valid_after: r.tokens_valid_after,
        })
    }
}

const AGENT_COLS: &str = "id, tenant_id, name, client_id, status, created_at, tokens_valid_after";

/// Maps constraint violations of an agent insert to what the operator did wrong.
fn insert_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let what = if db.message().contains("identit")
                || db.constraint().is_some_and(|c| c.contains("identit"))
            {
                "identity"
            } else {
                "agent"
            };
            return StoreError::Conflict(what);
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound("tenant");
        }
    }
    StoreError::from(e)
}

impl Store {
    /// Inserts agents (and their identities) in one transaction: all or none. With
    /// `max`, a tenant that would hold more than `max` agents gets none
    /// ([`StoreError::OverLimit`]); the count and the inserts are one transaction, the
    /// tenant row locked on PostgreSQL, so concurrent creations cannot pass it together.
    pub async fn create_agents(&self, new: Vec<NewAgent>, max: Option<u32>) -> Result<Vec<Agent>> {
        let created_at = now_ms();
        let agents: Vec<Agent> = new
            .iter()
            .map(|n| Agent {
                id: AgentId::new_v7(),
                tenant_id: n.tenant_id,
                name: n.name.clone(),
                client_id: n.client_id.clone(),
                status: AgentStatus::Active,
                created_at,
                tokens_valid_after: 0,
            })
            .collect();
        let lock = format!(
            "SELECT id FROM tenants WHERE id = $1 {}",
            dialect::lock_row(self.backend())
        );
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            if let (Some(max), Some(first)) = (max, new.first()) {
                let tenant = *first.tenant_id.as_uuid();
                sqlx::query(sqlx::AssertSqlSafe(lock.clone())).bind(tenant).execute(&mut *tx).await?;
                let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM agents WHERE tenant_id = $1")
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await?;
                if held.saturating_add(new.len() as i64) > i64::from(max) {
                    return Err(StoreError::OverLimit);
                }
            }
            for (a, n) in agents.iter().zip(&new) {
                sqlx::query(
                    "INSERT INTO agents (id, tenant_id, name, client_id, client_secret_hash, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, 'active', $6)",
                )
                .bind(*a.id.as_uuid())
                .bind(*a.tenant_id.as_uuid())
                .bind(&a.name)
                .bind(&a.client_id)
                .bind(&n.client_secret_hash)
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(insert_error)?;
                // Subscribed to its tenant's log from here on (see `tenant_log`).
                sqlx::query(
                    "INSERT INTO agent_cursors (agent_id, last_seq, acked_seq, mark, prev_mark) \
                     SELECT $1, 0, 0, log_head, log_head FROM tenants WHERE id = $2",
                )
                .bind(*a.id.as_uuid())
                .bind(*a.tenant_id.as_uuid())
                .execute(&mut *tx)
                .await?;
                let identities = [
                    (Provider::Clickup, n.clickup_user.as_ref().map(ClickUpUserId::as_str)),
                    (Provider::Slack, n.slack_user.as_ref().map(SlackUserId::as_str)),
                ];
                for (provider, user) in identities {
                    let Some(user) = user else { continue };
                    sqlx::query(
                        "INSERT INTO agent_identities (agent_id, tenant_id, provider, external_user_id) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(*a.id.as_uuid())
                    .bind(*a.tenant_id.as_uuid())
                    .bind(provider.as_str())
                    .bind(user)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match insert_error(e) {
                        StoreError::Conflict(_) => StoreError::Conflict("identity"),
                        other => other,
                    })?;
                }
            }
            tx.commit().await?;
        });
        Ok(agents)
    }

    pub async fn list_agents(&self, tenant: TenantId) -> Result<Vec<Agent>> {
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 ORDER BY id");
        let rows: Vec<AgentRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    pub async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1");
        let row: Option<AgentRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*id.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        row.ok_or(StoreError::NotFound("agent"))?.try_into()
    }

    /// Those of `ids` that exist, in no particular order: one query per chunk.
    pub async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(dialect::CHUNK) {
            let sql = format!(
                "SELECT {AGENT_COLS} FROM agents WHERE id IN ({})",
                dialect::placeholders(self.backend(), chunk.len())
            );
            let rows: Vec<AgentRow> = on_pool!(self, p => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id.as_uuid());
                }
                q.fetch_all(p).await
            })?;
            for row in rows {
                out.push(Agent::try_from(row)?);
            }
        }
        Ok(out)
    }

    /// The agent, its inbox cursor and its tenant's status and tier in one round trip:
    /// what a connecting socket needs.
    pub async fn agent_with_cursor(
        &self,
        id: AgentId,
    ) -> Result<(Agent, Cursor, TenantStatus, String)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            agent: AgentRow,
            last_seq: Option<i64>,
            acked_seq: Option<i64>,
            tenant_status: String,
            tenant_tier: String,
        }
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT a.id, a.tenant_id, a.name, a.client_id, a.status, a.created_at, a.tokens_valid_after, {HEAD_SEQ} AS last_seq, c.acked_seq, \
                 t.status AS tenant_status, t.tier AS tenant_tier FROM agents a JOIN tenants t ON t.id = a.tenant_id \
                 LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id = $1",
            )))
            .bind(*id.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        let row = row.ok_or(StoreError::NotFound("agent"))?;
        let seq = |v: Option<i64>| Seq::new(v.unwrap_or(0).max(0) as u64);
        let cursor = Cursor {
            last_seq: seq(row.last_seq),
            acked_seq: seq(row.acked_seq),
        };
        let tenant = TenantStatus::parse(&row.tenant_status)?;
        Ok((row.agent.try_into()?, cursor, tenant, row.tenant_tier))
    }

    /// The agent owning `client_id`, its secret hash and its tenant's status, for token
    /// issuance.
    pub async fn agent_credentials(
        &self,
        client_id: &str,
    ) -> Result<Option<(Agent, String, TenantStatus)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            agent: AgentRow,
            client_secret_hash: String,
            tenant_status: String,
        }
        if !can_match(client_id) {
            return Ok(None);
        }
        let sql = "SELECT a.id, a.tenant_id, a.name, a.client_id, a.status, a.created_at, a.tokens_valid_after, \
                   a.client_secret_hash, t.status AS tenant_status \
                   FROM agents a JOIN tenants t ON t.id = a.tenant_id WHERE a.client_id = $1";
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(sql)
                .bind(client_id)
                .fetch_optional(p)
                .await
        })?;
        row.map(|r| {
            let tenant = TenantStatus::parse(&r.tenant_status)?;
            Ok((r.agent.try_into()?, r.client_secret_hash, tenant))
        })
        .transpose()
    }

    pub async fn set_agent_status(&self, id: AgentId, status: AgentStatus) -> Result<Agent> {
        self.update_agent(id, Change::Status(status)).await
    }

    /// Refuses every token of the agent issued before `at_ms` (see
    /// [`Agent::accepts_token_issued_at`]).
    pub async fn revoke_agent_tokens(&self, id: AgentId, at_ms: i64) -> Result<Agent> {
        self.update_agent(id, Change::TokensValidAfter(at_ms)).await
    }

    pub async fn set_agent_secret_hash(&self, id: AgentId, hash: &str) -> Result<Agent> {
        self.update_agent(id, Change::SecretHash(hash)).await
    }

    async fn update_agent(&self, id: AgentId, change: Change<'_>) -> Result<Agent> {
        let sql = match change {
            Change::Status(_) => "UPDATE agents SET status = $1 WHERE id = $2",
            Change::SecretHash(_) => "UPDATE agents SET client_secret_hash = $1 WHERE id = $2",
            Change::TokensValidAfter(_) => {
                "UPDATE agents SET tokens_valid_after = $1 WHERE id = $2"
            }
        };
        let done = on_writer!(self, p => {
            let q = sqlx::query(sql);
            let q = match change {
                Change::Status(s) => q.bind(s.as_str()),
                Change::SecretHash(h) => q.bind(h),
                Change::TokensValidAfter(ms) => q.bind(ms),
            };
            q.bind(*id.as_uuid())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(StoreError::NotFound("agent"));
        }
        self.get_agent(id).await
    }
}

impl Store {
    /// A page of the tenant's agents in id order after `after`.
    pub async fn list_agents_page(
        &self,
        tenant: TenantId,
        filter: &AgentFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Agent>> {
        if filter.name_prefix.as_deref().is_some_and(|p| !can_match(p)) {
            return Ok(Vec::new());
        }
        // substr, not LIKE: a prefix with `%` or `_` means itself.
        let sql = format!(
            "SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR substr(name, 1, length($3)) = $3) AND ($4 IS NULL OR id > $4) \
             ORDER BY id LIMIT $5"
        );
        let rows: Vec<AgentRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .bind(filter.status.map(AgentStatus::as_str))
                .bind(filter.name_prefix.clone())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// The agent's ClickUp and Slack user ids (the first of each, by id).
    pub async fn agent_users(&self, id: AgentId) -> Result<(Option<String>, Option<String>)> {
        let rows: Vec<(String, String)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT provider, external_user_id FROM agent_identities WHERE agent_id = $1 \
                 ORDER BY provider, external_user_id",
            )
            .bind(*id.as_uuid())
            .fetch_all(p)
            .await
        })?;
        let first = |provider: Provider| {
            rows.iter()
                .find(|(p, _)| p == provider.as_str())
                .map(|(_, u)| u.clone())
        };
        Ok((first(Provider::Clickup), first(Provider::Slack)))
    }

    /// Renames the agent and sets or removes its ClickUp and Slack users, recording
    /// `audit`, in one transaction.
    pub async fn update_agent_profile(
        &self,
        id: AgentId,
        change: &AgentChange,
        audit: &NewAudit,
    ) -> Result<Agent> {
        let agent = self.get_agent(id).await?;
        let users = [
            (
                Provider::Clickup,
                change
                    .clickup_user
                    .as_ref()
                    .map(|u| u.as_ref().map(|u| u.as_str().to_owned())),
            ),
            (
                Provider::Slack,
                change
                    .slack_user
                    .as_ref()
                    .map(|u| u.as_ref().map(|u| u.as_str().to_owned())),
            ),
        ];
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(name) = &change.name {
                sqlx::query("UPDATE agents SET name = $1 WHERE id = $2")
                    .bind(name.clone())
                    .bind(*id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(insert_error)?;
            }
            for (provider, user) in &users {
                let Some(user) = user else { continue };
                sqlx::query("DELETE FROM agent_identities WHERE agent_id = $1 AND provider = $2")
                    .bind(*id.as_uuid())
                    .bind(provider.as_str())
                    .execute(&mut *tx)
                    .await?;
                let Some(user) = user else { continue };
                sqlx::query(
                    "INSERT INTO agent_identities (agent_id, tenant_id, provider, external_user_id) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(*id.as_uuid())
                .bind(*agent.tenant_id.as_uuid())
                .bind(provider.as_str())
                .bind(user.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| match insert_error(e) {
                    StoreError::Conflict(_) => StoreError::Conflict("identity"),
                    other => other,
                })?;
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
        });
        self.get_agent(id).await
    }
}
