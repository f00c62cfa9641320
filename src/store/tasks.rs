//! The mirror's memory: task mappings (ClickUp task ↔ Slack thread) and their agents,
//! what Nexus itself wrote to the providers, and the Slack channels seen created.

use nexus_proto::{AgentId, ClickUpTaskId, SlackChannelId, SlackTs, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{self, on_pool, on_writer};
use super::mappings::ProjectMapping;
use super::provider::Provider;
use super::{Result, Store, StoreError, external_id};
use crate::time::now_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskMapping {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub project_mapping_id: Uuid,
    pub clickup_task_id: ClickUpTaskId,
    pub slack_channel_id: SlackChannelId,
    pub slack_thread_ts: Option<SlackTs>,
    pub title: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlackChannel {
    pub channel_id: SlackChannelId,
    pub name: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// A project mapping names this channel.
    pub mapped: bool,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    tenant_id: Uuid,
    project_mapping_id: Uuid,
    clickup_task_id: String,
    slack_channel_id: String,
    slack_thread_ts: Option<String>,
    title: String,
    status: String,
}

const TASK_COLS: &str = "id, tenant_id, project_mapping_id, clickup_task_id, slack_channel_id, slack_thread_ts, title, status";

impl TryFrom<TaskRow> for TaskMapping {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> Result<Self> {
        Ok(TaskMapping {
            id: r.id,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            project_mapping_id: r.project_mapping_id,
            clickup_task_id: external_id(&r.clickup_task_id)?,
            slack_channel_id: external_id(&r.slack_channel_id)?,
            slack_thread_ts: r.slack_thread_ts.as_deref().map(external_id).transpose()?,
            title: r.title,
            status: r.status,
        })
    }
}

impl Store {
    async fn task_where(
        &self,
        filter: &str,
        tenant: TenantId,
        a: &str,
        b: Option<&str>,
    ) -> Result<Option<TaskMapping>> {
        let sql =
            format!("SELECT {TASK_COLS} FROM task_mappings WHERE tenant_id = $1 AND {filter}");
        let row: Option<TaskRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(*tenant.as_uuid())
                .bind(a.to_owned());
            if let Some(b) = b {
                q = q.bind(b.to_owned());
            }
            q.fetch_optional(p).await
        })?;
        row.map(TaskMapping::try_from).transpose()
    }

    pub async fn task_by_clickup_id(
        &self,
        tenant: TenantId,
        task_id: &ClickUpTaskId,
    ) -> Result<Option<TaskMapping>> {
        self.task_where("clickup_task_id = $2", tenant, task_id.as_str(), None)
            .await
    }

    /// The task whose Slack thread this is.
    pub async fn task_by_thread(
        &self,
        tenant: TenantId,
        channel: &SlackChannelId,
        thread_ts: &SlackTs,
    ) -> Result<Option<TaskMapping>> {
        self.task_where(
            "slack_channel_id = $2 AND slack_thread_ts = $3",
            tenant,
            channel.as_str(),
            Some(thread_ts.as_str()),
        )
        .await
    }

    /// Records the task's current name and status; returns the mapping as it was
    /// before (`None` the first time the task is seen) and as it is now.
    pub async fn upsert_task(
        &self,
        mapping: &ProjectMapping,
        task_id: &ClickUpTaskId,
        title: &str,
        status: &str,
    ) -> Result<(Option<TaskMapping>, TaskMapping)> {
        let tenant = mapping.tenant_id;
        let before = self.task_by_clickup_id(tenant, task_id).await?;
        let now = now_ms();
        let sql = format!(
            "INSERT INTO task_mappings (id, tenant_id, project_mapping_id, clickup_task_id, slack_channel_id, \
             title, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (tenant_id, clickup_task_id) DO UPDATE SET title = excluded.title, \
             status = excluded.status, project_mapping_id = excluded.project_mapping_id, updated_at = excluded.updated_at \
             RETURNING {TASK_COLS}"
        );
        let row: TaskRow = on_writer!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Uuid::now_v7())
                .bind(*tenant.as_uuid())
                .bind(mapping.id)
                .bind(task_id.as_str())
                .bind(mapping.slack_channel_id.as_str())
                .bind(title.to_owned())
                .bind(status.to_owned())
                .bind(now)
                .fetch_one(p)
                .await
        })?;
        Ok((before, row.try_into()?))
    }

    pub async fn set_task_status(&self, task: Uuid, status: &str) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query("UPDATE task_mappings SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.to_owned())
                .bind(now_ms())
                .bind(task)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Records the task's Slack thread, unless it has one already (the first one stays).
    pub async fn set_thread(&self, task: Uuid, thread_ts: &SlackTs) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query("UPDATE task_mappings SET slack_thread_ts = COALESCE(slack_thread_ts, $1) WHERE id = $2")
                .bind(thread_ts.as_str())
                .bind(task)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Agents who already got this task's `task_assigned`.
    pub async fn task_agents(&self, task: Uuid) -> Result<Vec<AgentId>> {
        let ids: Vec<Uuid> = on_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT t.agent_id FROM task_mapping_agents t JOIN agents g ON g.id = t.agent_id \
                 WHERE t.task_mapping_id = $1 AND g.status = 'active' ORDER BY t.agent_id",
            )
            .bind(task)
            .fetch_all(p)
            .await
        })?;
        Ok(ids.into_iter().map(AgentId::from_uuid).collect())
    }

    pub async fn add_task_agents(&self, task: Uuid, agents: &[AgentId]) -> Result<()> {
        if agents.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // No transaction: a crash between chunks only means a re-run emits again into
        // the same idempotency keys and records the rest.
        on_writer!(self, p => {
            for chunk in agents.chunks(dialect::CHUNK) {
                let sql = format!(
                    "INSERT INTO task_mapping_agents (task_mapping_id, agent_id, assigned_at) VALUES {} \
                     ON CONFLICT DO NOTHING",
                    dialect::values(self.backend(), chunk.len(), 3, "")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for agent in chunk {
                    q = q.bind(task).bind(*agent.as_uuid()).bind(now);
                }
                q.execute(p).await?;
            }
        });
        Ok(())
    }
}

impl Store {
    /// Forgets writes recorded before `before_ms`, at most `limit` of them.
    pub async fn delete_old_provider_writes(&self, before_ms: i64, limit: u32) -> Result<u64> {
        let key = "tenant_id, provider, external_id";
        self.delete_aged("provider_writes", key, "created_at", before_ms, limit)
            .await
    }

    /// Did Nexus write this (so its webhook echo is no news)?
    pub async fn is_own_write(
        &self,
        tenant: TenantId,
        provider: Provider,
        external_id: &str,
    ) -> Result<bool> {
        let n: i64 = on_pool!(self, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM provider_writes WHERE tenant_id = $1 AND provider = $2 AND external_id = $3",
            )
            .bind(*tenant.as_uuid())
            .bind(provider.as_str())
            .bind(external_id.to_owned())
            .fetch_one(p)
            .await
        })?;
        Ok(n > 0)
    }

    pub async fn record_channel(
        &self,
        tenant: TenantId,
        channel: &SlackChannelId,
        name: &str,
    ) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO slack_channels (tenant_id, channel_id, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, channel_id) DO UPDATE SET name = excluded.name",
            )
            .bind(*tenant.as_uuid())
            .bind(channel.as_str())
            .bind(name.to_owned())
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Channels created since Nexus started listening, and whether they are mapped yet.
    pub async fn list_channels(&self, tenant: TenantId) -> Result<Vec<SlackChannel>> {
        self.list_channels_page(tenant, None, u32::MAX).await
    }

    /// The first `limit` of [`Store::list_channels`] by channel id after `after` (a
    /// channel has no id of ours; its Slack id is unique in the tenant).
    pub async fn list_channels_page(
        &self,
        tenant: TenantId,
        after: Option<&SlackChannelId>,
        limit: u32,
    ) -> Result<Vec<SlackChannel>> {
        let rows: Vec<(String, String, i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT c.channel_id, c.name, c.created_at, \
                 (SELECT COUNT(*) FROM project_mappings m WHERE m.tenant_id = c.tenant_id AND m.slack_channel_id = c.channel_id) \
                 FROM slack_channels c WHERE c.tenant_id = $1 AND ($2 IS NULL OR c.channel_id > $2) \
                 ORDER BY c.channel_id LIMIT $3",
            )
            .bind(*tenant.as_uuid())
            .bind(after.map(|c| c.as_str().to_owned()))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(channel_id, name, created_at, mapped)| {
                Ok(SlackChannel {
                    channel_id: external_id(&channel_id)?,
                    name,
                    created_at,
                    mapped: mapped > 0,
                })
            })
            .collect()
    }
}
