//! Who a webhook concerns: project mappings (ClickUp list ↔ Slack channel, with default
//! agents), aliases (`@AI_Squad` → agents) and identities (a ClickUp or Slack user → agent).

use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::members::{Members, put_members};
use super::provider::{ExternalUser, Provider, ProviderUserId};
use super::{Result, Store, StoreError, corrupt_id, external_id};
use crate::time::now_ms;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectMapping {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub clickup_list_id: ClickUpListId,
    pub slack_channel_id: SlackChannelId,
    /// Post each new task in the channel and use that message as the task's thread.
    pub open_threads: bool,
    /// Who gets a task nobody (no identity, no alias) is assigned to.
    pub default_agents: Vec<AgentId>,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

pub struct NewMapping {
    pub tenant_id: TenantId,
    pub clickup_list_id: ClickUpListId,
    pub slack_channel_id: SlackChannelId,
    pub open_threads: bool,
    pub default_agents: Vec<AgentId>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alias {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub alias: String,
    pub agents: Vec<AgentId>,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Identity {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub user: ExternalUser,
}

/// A mapping's columns and one of its default agents (none: `NULL`), ordered by mapping.
#[derive(sqlx::FromRow)]
struct MappingRow {
    id: Uuid,
    tenant_id: Uuid,
    clickup_list_id: String,
    slack_channel_id: String,
    open_threads: bool,
    created_at: i64,
    agent_id: Option<Uuid>,
}

const MAPPING_SELECT: &str = "SELECT m.id, m.tenant_id, m.clickup_list_id, m.slack_channel_id, \
     m.open_threads, m.created_at, d.agent_id FROM project_mappings m \
     LEFT JOIN project_mapping_agents d ON d.mapping_id = m.id";

/// An alias's columns and one of its members, ordered by alias.
#[derive(sqlx::FromRow)]
struct AliasRow {
    id: Uuid,
    tenant_id: Uuid,
    alias: String,
    created_at: i64,
    agent_id: Option<Uuid>,
}

const ALIAS_SELECT: &str = "SELECT a.id, a.tenant_id, a.alias, a.created_at, m.agent_id \
     FROM agent_aliases a LEFT JOIN agent_alias_members m ON m.alias_id = a.id";

/// What a read of mappings or aliases is filtered by.
enum Filter<'a> {
    Id(Uuid),
    Tenant(TenantId),
    List(TenantId, &'a ClickUpListId),
    /// The tenant's first `limit` by id after `after`.
    Page(TenantId, Option<Uuid>, u32),
}

/// `WHERE` for a [`Filter::Page`] of `table` (aliased `alias` in the select): the
/// limit applies to parents, not to their joined children.
fn page_where(alias: &str, table: &str) -> String {
    format!(
        "WHERE {alias}.id IN (SELECT id FROM {table} WHERE tenant_id = $1 \
         AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3)"
    )
}

/// Folds consecutive rows of one parent (mapping, alias) into it, collecting the children.
fn group<R, T>(
    rows: Vec<R>,
    id: impl Fn(&R) -> Uuid,
    new: impl Fn(&R) -> Result<T>,
    child: impl Fn(&mut T, &R),
) -> Result<Vec<T>> {
    let mut out: Vec<(Uuid, T)> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|(last, _)| *last != id(&row)) {
            out.push((id(&row), new(&row)?));
        }
        if let Some((_, parent)) = out.last_mut() {
            child(parent, &row);
        }
    }
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

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
            .bind(new.clickup_list_id.as_str())
            .bind(new.slack_channel_id.as_str())
            .bind(new.open_threads)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
            let agents = &new.default_agents;
            put_members!(tx, self.backend(), Members::Mapping, id, agents, replace = false)
                .map_err(&err)?;
            tx.commit().await?;
        });
        self.get_mapping(id).await
    }

    /// Mappings with their default agents, in one query.
    async fn mappings(&self, filter: Filter<'_>) -> Result<Vec<ProjectMapping>> {
        let sql = match filter {
            Filter::Id(_) => format!("{MAPPING_SELECT} WHERE m.id = $1 ORDER BY m.id, d.agent_id"),
            Filter::Tenant(_) => {
                format!("{MAPPING_SELECT} WHERE m.tenant_id = $1 ORDER BY m.id, d.agent_id")
            }
            Filter::List(..) => format!(
                "{MAPPING_SELECT} WHERE m.tenant_id = $1 AND m.clickup_list_id = $2 ORDER BY m.id, d.agent_id"
            ),
            Filter::Page(..) => format!(
                "{MAPPING_SELECT} {} ORDER BY m.id, d.agent_id",
                page_where("m", "project_mappings")
            ),
        };
        let rows: Vec<MappingRow> = on_pool!(self, p => {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            let q = match filter {
                Filter::Id(id) => q.bind(id),
                Filter::Tenant(t) => q.bind(*t.as_uuid()),
                Filter::List(t, list) => q.bind(*t.as_uuid()).bind(list.as_str()),
                Filter::Page(t, after, limit) => q.bind(*t.as_uuid()).bind(after).bind(i64::from(limit)),
            };
            q.fetch_all(p).await
        })?;
        group(
            rows,
            |r| r.id,
            |r| {
                Ok(ProjectMapping {
                    id: r.id,
                    tenant_id: TenantId::from_uuid(r.tenant_id),
                    clickup_list_id: external_id(&r.clickup_list_id)?,
                    slack_channel_id: external_id(&r.slack_channel_id)?,
                    open_threads: r.open_threads,
                    default_agents: Vec::new(),
                    created_at: r.created_at,
                })
            },
            |m, r| m.default_agents.extend(r.agent_id.map(AgentId::from_uuid)),
        )
    }

    pub async fn list_mappings(&self, tenant: TenantId) -> Result<Vec<ProjectMapping>> {
        self.mappings(Filter::Tenant(tenant)).await
    }

    /// The tenant's first `limit` mappings by id after `after`.
    pub async fn list_mappings_page(
        &self,
        tenant: TenantId,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ProjectMapping>> {
        self.mappings(Filter::Page(tenant, after, limit)).await
    }

    /// The mapping of a ClickUp list, if the tenant mapped it.
    pub async fn mapping_for_list(
        &self,
        tenant: TenantId,
        list_id: &ClickUpListId,
    ) -> Result<Option<ProjectMapping>> {
        Ok(self.mappings(Filter::List(tenant, list_id)).await?.pop())
    }

    pub async fn get_mapping(&self, id: Uuid) -> Result<ProjectMapping> {
        self.mappings(Filter::Id(id))
            .await?
            .pop()
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
            put_members!(tx, self.backend(), Members::Alias, id, agents, replace = false)
                .map_err(&err)?;
            tx.commit().await?;
            id
        });
        self.get_alias(id).await
    }

    /// Aliases with their members, in one query.
    async fn aliases(&self, filter: Filter<'_>) -> Result<Vec<Alias>> {
        let sql = match filter {
            Filter::Id(_) => {
                format!("{ALIAS_SELECT} WHERE a.id = $1 ORDER BY a.alias, a.id, m.agent_id")
            }
            Filter::Page(..) => format!(
                "{ALIAS_SELECT} {} ORDER BY a.id, m.agent_id",
                page_where("a", "agent_aliases")
            ),
            Filter::Tenant(_) | Filter::List(..) => {
                format!("{ALIAS_SELECT} WHERE a.tenant_id = $1 ORDER BY a.alias, a.id, m.agent_id")
            }
        };
        let rows: Vec<AliasRow> = on_pool!(self, p => {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            let q = match filter {
                Filter::Id(id) => q.bind(id),
                Filter::Tenant(t) | Filter::List(t, _) => q.bind(*t.as_uuid()),
                Filter::Page(t, after, limit) => q.bind(*t.as_uuid()).bind(after).bind(i64::from(limit)),
            };
            q.fetch_all(p).await
        })?;
        group(
            rows,
            |r| r.id,
            |r| {
                Ok(Alias {
                    id: r.id,
                    tenant_id: TenantId::from_uuid(r.tenant_id),
                    alias: r.alias.clone(),
                    agents: Vec::new(),
                    created_at: r.created_at,
                })
            },
            |a, r| a.agents.extend(r.agent_id.map(AgentId::from_uuid)),
        )
    }

    pub async fn list_aliases(&self, tenant: TenantId) -> Result<Vec<Alias>> {
        self.aliases(Filter::Tenant(tenant)).await
    }

    /// The tenant's first `limit` aliases by id after `after`.
    pub async fn list_aliases_page(
        &self,
        tenant: TenantId,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Alias>> {
        self.aliases(Filter::Page(tenant, after, limit)).await
    }

    pub async fn get_alias(&self, id: Uuid) -> Result<Alias> {
        self.aliases(Filter::Id(id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound("alias"))
    }

    pub async fn remove_alias(&self, id: Uuid) -> Result<()> {
        self.delete_by_id("DELETE FROM agent_aliases WHERE id = $1", id, "alias")
            .await
    }
}

impl Store {
    pub async fn add_identity(&self, agent: AgentId, user: ExternalUser) -> Result<Identity> {
        let tenant = self.get_agent(agent).await?.tenant_id;
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO agent_identities (agent_id, tenant_id, provider, external_user_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(*agent.as_uuid())
            .bind(*tenant.as_uuid())
            .bind(user.provider().as_str())
            .bind(user.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(fk_as_not_found("agent", "identity"))?;
        Ok(Identity {
            agent_id: agent,
            tenant_id: tenant,
            user,
        })
    }

    /// Removes the tenant's identity `user`; with `agent`, only if it is that agent's.
    pub async fn remove_identity(
        &self,
        tenant: TenantId,
        user: &ExternalUser,
        agent: Option<AgentId>,
    ) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "DELETE FROM agent_identities WHERE tenant_id = $1 AND provider = $2 AND external_user_id = $3 \
                 AND ($4 IS NULL OR agent_id = $4)",
            )
            .bind(*tenant.as_uuid())
            .bind(user.provider().as_str())
            .bind(user.as_str())
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
        self.list_identities_page(tenant, None, u32::MAX).await
    }

    /// The tenant's first `limit` identities by provider and user after `after`:
    /// identities have no id of their own, and the pair is unique in a tenant.
    pub async fn list_identities_page(
        &self,
        tenant: TenantId,
        after: Option<&ExternalUser>,
        limit: u32,
    ) -> Result<Vec<Identity>> {
        let rows: Vec<(Uuid, String, String)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT agent_id, provider, external_user_id FROM agent_identities WHERE tenant_id = $1 \
                 AND ($2 IS NULL OR (provider, external_user_id) > ($2, $3)) \
                 ORDER BY provider, external_user_id LIMIT $4",
            )
            .bind(*tenant.as_uuid())
            .bind(after.map(|u| u.provider().as_str()))
            .bind(after.map(|u| u.as_str().to_owned()))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(agent, provider, user)| {
                let provider = Provider::parse(&provider)?;
                Ok(Identity {
                    agent_id: AgentId::from_uuid(agent),
                    tenant_id: tenant,
                    user: ExternalUser::parse(provider, &user).map_err(corrupt_id(&user))?,
                })
            })
            .collect()
    }

    /// Active agents behind these provider users (ClickUp assignees, Slack mentions).
    pub async fn agents_by_identity<U: ProviderUserId>(
        &self,
        tenant: TenantId,
        users: &[U],
    ) -> Result<Vec<AgentId>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..users.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT i.agent_id FROM agent_identities i JOIN agents g ON g.id = i.agent_id \
             WHERE i.tenant_id = $1 AND i.provider = $2 AND i.external_user_id IN ({list}) \
             AND g.status = 'active'"
        );
        let ids: Vec<Uuid> = on_pool!(self, p => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .bind(U::PROVIDER.as_str());
            for user in users {
                q = q.bind(user.as_ref());
            }
            q.fetch_all(p).await
        })?;
        let mut out: Vec<AgentId> = ids.into_iter().map(AgentId::from_uuid).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}
