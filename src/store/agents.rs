//! Agents, their OAuth2 client credentials and the external identities that reach them.

use nexus_proto::{AgentId, ClickUpUserId, Seq, SlackUserId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{can_match, on_pool, on_writer};
use super::{Cursor, Provider, Result, Store, StoreError};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub client_id: String,
    pub status: AgentStatus,
    #[serde(with = "crate::time::ms_rfc3339")]
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
    /// Inserts agents (and their identities) in one transaction: all or none.
    pub async fn create_agents(&self, new: Vec<NewAgent>) -> Result<Vec<Agent>> {
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
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
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

    /// The agent and its inbox cursor in one round trip: what a connecting socket needs.
    pub async fn agent_with_cursor(&self, id: AgentId) -> Result<(Agent, Cursor)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            agent: AgentRow,
            last_seq: Option<i64>,
            acked_seq: Option<i64>,
        }
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT a.id, a.tenant_id, a.name, a.client_id, a.status, a.created_at, a.tokens_valid_after, c.last_seq, c.acked_seq \
                 FROM agents a LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id = $1",
            )
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
        Ok((row.agent.try_into()?, cursor))
    }

    /// The agent owning `client_id` and its secret hash, for token issuance.
    pub async fn agent_credentials(&self, client_id: &str) -> Result<Option<(Agent, String)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            agent: AgentRow,
            client_secret_hash: String,
        }
        if !can_match(client_id) {
            return Ok(None);
        }
        let sql =
            format!("SELECT {AGENT_COLS}, client_secret_hash FROM agents WHERE client_id = $1");
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(client_id)
                .fetch_optional(p)
                .await
        })?;
        row.map(|r| Ok((r.agent.try_into()?, r.client_secret_hash)))
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
