//! Changing the mirror's configuration in place (`PATCH` on mappings, aliases and
//! identities): each change and its audit record in one transaction.

use nexus_proto::{AgentId, TenantId};
use uuid::Uuid;

use super::audit::insert_audit;
use super::dialect::on_writer;
use super::members::{Members, put_members};
use super::{Alias, ExternalUser, Identity, NewAudit, ProjectMapping, Result, Store, StoreError};

impl Store {
    /// Sets the mapping's default agents and/or whether it opens threads; `None` keeps.
    pub async fn update_mapping(
        &self,
        id: Uuid,
        default_agents: Option<&[AgentId]>,
        open_threads: Option<bool>,
        audit: &NewAudit,
    ) -> Result<ProjectMapping> {
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE project_mappings SET open_threads = COALESCE($2, open_threads) WHERE id = $1",
            )
            .bind(id)
            .bind(open_threads)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("mapping"));
            }
            if let Some(agents) = default_agents {
                put_members!(tx, self.backend(), Members::Mapping, id, agents, replace = true)?;
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
        });
        self.get_mapping(id).await
    }

    /// Replaces the alias's members.
    pub async fn set_alias_agents(
        &self,
        id: Uuid,
        agents: &[AgentId],
        audit: &NewAudit,
    ) -> Result<Alias> {
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            put_members!(tx, self.backend(), Members::Alias, id, agents, replace = true)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
        });
        self.get_alias(id).await
    }

    /// Makes the tenant's identity `user` another agent's.
    pub async fn move_identity(
        &self,
        tenant: TenantId,
        user: &ExternalUser,
        agent: AgentId,
        audit: &NewAudit,
    ) -> Result<Identity> {
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE agent_identities SET agent_id = $1 \
                 WHERE tenant_id = $2 AND provider = $3 AND external_user_id = $4",
            )
            .bind(*agent.as_uuid())
            .bind(*tenant.as_uuid())
            .bind(user.provider().as_str())
            .bind(user.as_str().to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("identity"));
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
        });
        Ok(Identity {
            agent_id: agent,
            tenant_id: tenant,
            user: user.clone(),
        })
    }
}
