//! Intents of writes to Slack and ClickUp (`side_effects`): what makes a write happen at
//! most once when the attempt making it can die or lose its lease at any moment. The
//! helper that drives a write through them is `crate::mirror::effects`.

use nexus_proto::TenantId;
use uuid::Uuid;

use super::dialect::{self, on_writer};
use super::{Provider, Result, Store};

/// The job attempt making a write: its lease (DESIGN §11) is what entitles it to.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub job_id: Uuid,
    pub lease_owner: &'a str,
}

/// What [`Store::begin_effect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// Nobody began this write before: make it.
    Fresh,
    /// An earlier attempt began it at `started_at` (ms, the database's clock) and never
    /// recorded a result: the provider may or may not have it. This attempt holds it now.
    Unfinished { started_at: i64 },
    /// It was made; the recorded result.
    Done(String),
    /// Another job's live attempt is making it now: try again later.
    Busy,
    /// This attempt's lease is gone (another worker has the job): make nothing.
    LeaseLost,
}

/// A row of `side_effects`, with whether its holder's lease is still live.
#[derive(sqlx::FromRow)]
struct Row {
    state: String,
    result: Option<String>,
    job_id: Option<Uuid>,
    lease_owner: Option<String>,
    started_at: i64,
    holder_live: bool,
}

/// `EXISTS` the running attempt `job`/`owner` whose lease has not expired by the
/// database's clock.
fn live_lease(backend: dialect::Backend, job: &str, owner: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jobs j WHERE j.id = {job} AND j.lease_owner = {owner} \
         AND j.status = 'running' AND j.lease_until >= {})",
        dialect::now_ms(backend)
    )
}

impl Store {
    /// Records, in its own transaction, that `holder` is about to make the write `op_key`
    /// — unless it was made, or another live attempt is making it.
    pub async fn begin_effect(
        &self,
        op_key: &str,
        tenant: TenantId,
        holder: Holder<'_>,
    ) -> Result<Begun> {
        let b = self.backend();
        let now = dialect::now_ms(b);
        let read = format!(
            "SELECT state, result, job_id, lease_owner, started_at, {} AS holder_live \
             FROM side_effects WHERE op_key = $1 {}",
            live_lease(b, "side_effects.job_id", "side_effects.lease_owner"),
            dialect::lock_row(b)
        );
        let ours = format!("SELECT {}", live_lease(b, "$1", "$2"));
        let insert = format!(
            "INSERT INTO side_effects (op_key, tenant_id, job_id, lease_owner, state, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'pending', {now}, {now}) ON CONFLICT (op_key) DO NOTHING"
        );
        let take = format!(
            "UPDATE side_effects SET job_id = $1, lease_owner = $2, updated_at = {now} WHERE op_key = $3"
        );
        let owner = holder.lease_owner.to_owned();
        let begun = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let found: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(read))
                .bind(op_key.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
            let live: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(ours))
                .bind(holder.job_id)
                .bind(owner.clone())
                .fetch_one(&mut *tx)
                .await?;
            let begun = match found {
                _ if !live => Begun::LeaseLost,
                Some(r) if r.state == "done" => Begun::Done(r.result.unwrap_or_default()),
                Some(r) if r.holder_live
                    && (r.job_id, r.lease_owner.as_deref()) != (Some(holder.job_id), Some(&owner)) =>
                {
                    Begun::Busy
                }
                Some(r) => {
                    sqlx::query(sqlx::AssertSqlSafe(take))
                        .bind(holder.job_id)
                        .bind(owner.clone())
                        .bind(op_key.to_owned())
                        .execute(&mut *tx)
                        .await?;
                    Begun::Unfinished { started_at: r.started_at }
                }
                None => {
                    let n = sqlx::query(sqlx::AssertSqlSafe(insert))
                        .bind(op_key.to_owned())
                        .bind(*tenant.as_uuid())
                        .bind(holder.job_id)
                        .bind(owner.clone())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    // Lost a race with another node's insert (PostgreSQL): it holds it.
                    if n == 1 { Begun::Fresh } else { Begun::Busy }
                }
            };
            tx.commit().await?;
            begun
        });
        Ok(begun)
    }

    /// Records the write's result, and what it made (`external_id` at `provider`), so
    /// its webhook echo is known as Nexus's own — whether or not the attempt still holds
    /// its lease: the write happened.
    pub async fn finish_effect(
        &self,
        op_key: &str,
        tenant: TenantId,
        made: Option<(Provider, &str)>,
        result: &str,
    ) -> Result<()> {
        let now = dialect::now_ms(self.backend());
        let done = format!(
            "UPDATE side_effects SET state = 'done', result = $1, updated_at = {now} WHERE op_key = $2"
        );
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(done))
                .bind(result.to_owned())
                .bind(op_key.to_owned())
                .execute(&mut *tx)
                .await?;
            if let Some((provider, external_id)) = made {
                sqlx::query(
                    "INSERT INTO provider_writes (tenant_id, provider, external_id, op_key, result, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(*tenant.as_uuid())
                .bind(provider.as_str())
                .bind(external_id.to_owned())
                .bind(op_key.to_owned())
                .bind(result.to_owned())
                .bind(crate::time::now_ms())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets an intent whose write certainly did not happen (the provider refused it).
    pub async fn abandon_effect(&self, op_key: &str, holder: Holder<'_>) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query(
                "DELETE FROM side_effects WHERE op_key = $1 AND state = 'pending' AND job_id = $2 AND lease_owner = $3",
            )
            .bind(op_key.to_owned())
            .bind(holder.job_id)
            .bind(holder.lease_owner.to_owned())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The recorded result of a write that was made.
    pub async fn effect_result(&self, op_key: &str) -> Result<Option<String>> {
        Ok(super::dialect::on_pool!(self, p => {
            sqlx::query_scalar("SELECT result FROM side_effects WHERE op_key = $1 AND state = 'done'")
                .bind(op_key.to_owned())
                .fetch_optional(p)
                .await
        })?
        .flatten())
    }

    /// Forgets intents last touched before `before_ms`, at most `limit` of them.
    pub async fn delete_old_effects(&self, before_ms: i64, limit: u32) -> Result<u64> {
        self.delete_aged("side_effects", "op_key", "updated_at", before_ms, limit)
            .await
    }
}
