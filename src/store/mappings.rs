//! Who a webhook concerns: project mappings (ClickUp list ↔ Slack channel, with default
//! agents), aliases (`@AI_Squad` → agents) and identities (a ClickUp or Slack user → agent).

use nexus_proto::{AgentId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Store, StoreError, now_ms, on_pool, on_writer};

/// The SaaS whose users and objects Nexus mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Clickup,
    Slack,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Clickup => "clickup",
            Provider::Slack => "slack",
        }
    }

    fn parse(s: &str) -> Result<Provider> {
        match s {
            "clickup" => Ok(Provider::Clickup),
            "slack" => Ok(Provider::Slack),
            other => Err(StoreError::Corrupt(format!("provider {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectMapping {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub clickup_list_id: String,
    pub slack_channel_id: String,
    /// Post each new task in the channel and use that message as the task's thread.
    pub open_threads: bool,
    /// Who gets a task nobody (no identity, no alias) is assigned to.
    pub default_agents: Vec<AgentId>,
    #[serde(with = "crate::time::ms_rfc3339")]
    pub created_at: i64,
}

pub struct NewMapping {
    pub tenant_id: TenantId,
    pub clickup_list_id: String,
    pub slack_channel_id: String,
    pub open_threads: bool,
    pub default_agents: Vec<AgentId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alias {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub alias: String,
    pub agents: Vec<AgentId>,
    #[serde(with = "crate::time::ms_rfc3339")]
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub provider: Provider,
    pub external_user_id: String,
}

type MappingRow = (Uuid, Uuid, String, String, bool, i64);

const MAPPING_COLS: &str =
    "id, tenant_id, clickup_list_id, slack_channel_id, open_threads, created_at";

fn fk_as_not_found(
    what: &'static str,
    conflict: &'static str,
) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound(what),
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        _ => StoreError::from(e),
    }
}

impl Store {
    pub async fn create_mapping(&self, new: NewMapping) -> Result<ProjectMapping> {
        let id = Uuid::now_v7();
        let err = fk_as_not_found("tenant or agent", "mapping for this list or channel");
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO project_mappings (id, tenant_id, clickup_list_id, slack_channel_id, open_threads, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(*new.tenant_id.as_uuid())
            .bind(&new.clickup_list_id)
            .bind(&new.slack_channel_id)
            .bind(new.open_threads)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
            for agent in &new.default_agents {
                sqlx::query("INSERT INTO project_mapping_agents (mapping_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(*agent.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(&err)?;
            }
            tx.commit().await?;
        });
        self.get_mapping(id).await
    }

    async fn mappings_where(
        &self,
        filter: &str,
        tenant: TenantId,
        value: Option<&str>,
    ) -> Result<Vec<ProjectMapping>> {
        let sql = format!(
            "SELECT {MAPPING_COLS} FROM project_mappings WHERE tenant_id = $1 {filter} ORDER BY id"
        );
        let rows: Vec<MappingRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(*tenant.as_uuid());
            if let Some(v) = value {
                q = q.bind(v.to_owned());
            }
            q.fetch_all(p).await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, tenant, list, channel, open_threads, created_at) in rows {
            let agents: Vec<Uuid> = on_pool!(self, p => {
                sqlx::query_scalar("SELECT agent_id FROM project_mapping_agents WHERE mapping_id = $1 ORDER BY agent_id")
                    .bind(id)
                    .fetch_all(p)
                    .await
            })?;
            out.push(ProjectMapping {
                id,
                tenant_id: TenantId::from_uuid(tenant),
                clickup_list_id: list,
                slack_channel_id: channel,
                open_threads,
                default_agents: agents.into_iter().map(AgentId::from_uuid).collect(),
                created_at,
            });
        }
        Ok(out)
    }

    pub async fn list_mappings(&self, tenant: TenantId) -> Result<Vec<ProjectMapping>> {
        self.mappings_where("", tenant, None).await
    }

    /// The mapping of a ClickUp list, if the tenant mapped it.
    pub async fn mapping_for_list(
        &self,
        tenant: TenantId,
        list_id: &str,
    ) -> Result<Option<ProjectMapping>> {
        Ok(self
            .mappings_where("AND clickup_list_id = $2", tenant, Some(list_id))
            .await?
            .pop())
    }

    pub async fn get_mapping(&self, id: Uuid) -> Result<ProjectMapping> {
        let tenant: Option<Uuid> = on_pool!(self, p => {
            sqlx::query_scalar("SELECT tenant_id FROM project_mappings WHERE id = $1").bind(id).fetch_optional(p).await
        })?;
        let tenant = TenantId::from_uuid(tenant.ok_or(StoreError::NotFound("mapping"))?);
        self.list_mappings(tenant)
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or(StoreError::NotFound("mapping"))
    }

    pub async fn remove_mapping(&self, id: Uuid) -> Result<()> {
        self.delete_by_id("DELETE FROM project_mappings WHERE id = $1", id, "mapping")
            .await
    }

    async fn delete_by_id(&self, sql: &'static str, id: Uuid, what: &'static str) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query(sql).bind(id).execute(p).await.map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(what));
        }
        Ok(())
    }
}

impl Store {
    /// Creates `@alias` or, when the tenant has it already, adds the agents to it.
    pub async fn add_alias(
        &self,
        tenant: TenantId,
        alias: &str,
        agents: &[AgentId],
    ) -> Result<Alias> {
        let err = fk_as_not_found("tenant or agent", "alias");
        let id = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO agent_aliases (id, tenant_id, alias, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, alias) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(*tenant.as_uuid())
            .bind(alias.to_owned())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
            let id: Uuid = sqlx::query_scalar("SELECT id FROM agent_aliases WHERE tenant_id = $1 AND alias = $2")
                .bind(*tenant.as_uuid())
                .bind(alias.to_owned())
                .fetch_one(&mut *tx)
                .await?;
            for agent in agents {
                sqlx::query("INSERT INTO agent_alias_members (alias_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(*agent.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(&err)?;
            }
            tx.commit().await?;
            id
        });
        self.get_alias(id).await
    }

    pub async fn list_aliases(&self, tenant: TenantId) -> Result<Vec<Alias>> {
        let rows: Vec<(Uuid, String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, alias, created_at FROM agent_aliases WHERE tenant_id = $1 ORDER BY alias")
                .bind(*tenant.as_uuid())
                .fetch_all(p)
                .await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, alias, created_at) in rows {
            let agents: Vec<Uuid> = on_pool!(self, p => {
                sqlx::query_scalar("SELECT agent_id FROM agent_alias_members WHERE alias_id = $1 ORDER BY agent_id")
                    .bind(id)
                    .fetch_all(p)
                    .await
            })?;
            out.push(Alias {
                id,
                tenant_id: tenant,
                alias,
                agents: agents.into_iter().map(AgentId::from_uuid).collect(),
                created_at,
            });
        }
        Ok(out)
    }

    pub async fn get_alias(&self, id: Uuid) -> Result<Alias> {
        let tenant: Option<Uuid> = on_pool!(self, p => {
            sqlx::query_scalar("SELECT tenant_id FROM agent_aliases WHERE id = $1").bind(id).fetch_optional(p).await
        })?;
        let tenant = TenantId::from_uuid(tenant.ok_or(StoreError::NotFound("alias"))?);
        self.list_aliases(tenant)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or(StoreError::NotFound("alias"))
    }

    pub async fn remove_alias(&self, id: Uuid) -> Result<()> {
        self.delete_by_id("DELETE FROM agent_aliases WHERE id = $1", id, "alias")
            .await
    }
}

impl Store {
    pub async fn add_identity(
        &self,
        agent: AgentId,
        provider: Provider,
        user: &str,
    ) -> Result<Identity> {
        let tenant = self.get_agent(agent).await?.tenant_id;
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO agent_identities (agent_id, tenant_id, provider, external_user_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(*agent.as_uuid())
            .bind(*tenant.as_uuid())
            .bind(provider.as_str())
            .bind(user.to_owned())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(fk_as_not_found("agent", "identity"))?;
        Ok(Identity {
            agent_id: agent,
            tenant_id: tenant,
            provider,
            external_user_id: user.to_owned(),
        })
    }

    /// Removes the tenant's identity `user`; with `agent`, only if it is that agent's.
    pub async fn remove_identity(
        &self,
        tenant: TenantId,
        provider: Provider,
        user: &str,
        agent: Option<AgentId>,
    ) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "DELETE FROM agent_identities WHERE tenant_id = $1 AND provider = $2 AND external_user_id = $3 \
                 AND ($4 IS NULL OR agent_id = $4)",
            )
            .bind(*tenant.as_uuid())
            .bind(provider.as_str())
            .bind(user.to_owned())
            .bind(agent.map(|a| *a.as_uuid()))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound("identity"));
        }
        Ok(())
    }

    pub async fn list_identities(&self, tenant: TenantId) -> Result<Vec<Identity>> {
        let rows: Vec<(Uuid, String, String)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT agent_id, provider, external_user_id FROM agent_identities WHERE tenant_id = $1 \
                 ORDER BY provider, external_user_id",
            )
            .bind(*tenant.as_uuid())
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(agent, provider, user)| {
                Ok(Identity {
                    agent_id: AgentId::from_uuid(agent),
                    tenant_id: tenant,
                    provider: Provider::parse(&provider)?,
                    external_user_id: user,
                })
            })
            .collect()
    }

    /// Active agents behind these provider users (ClickUp assignees, Slack mentions).
    pub async fn agents_by_identity(
        &self,
        tenant: TenantId,
        provider: Provider,
        users: &[String],
    ) -> Result<Vec<AgentId>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for user in users {
            let ids: Vec<Uuid> = on_pool!(self, p => {
                sqlx::query_scalar(
                    "SELECT i.agent_id FROM agent_identities i JOIN agents g ON g.id = i.agent_id \
                     WHERE i.tenant_id = $1 AND i.provider = $2 AND i.external_user_id = $3 AND g.status = 'active'",
                )
                .bind(*tenant.as_uuid())
                .bind(provider.as_str())
                .bind(user.clone())
                .fetch_all(p)
                .await
            })?;
            out.extend(ids.into_iter().map(AgentId::from_uuid));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
