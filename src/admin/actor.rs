//! Who performs an operator action, and the audit record each action leaves.

use nexus_proto::TenantId;
use serde_json::Value;
use uuid::Uuid;

use crate::store::{NewAudit, OperatorKey};

/// The operator behind an action: a key (through the API) or the CLI (on the node's
/// machine, with database access).
#[derive(Debug, Clone)]
pub enum Actor {
    Key { id: Uuid, name: String },
    Cli,
}

impl Actor {
    pub fn key(key: &OperatorKey) -> Actor {
        Actor::Key {
            id: key.id,
            name: key.name.clone(),
        }
    }

    /// The audit record of `action` on `target`. `details` must hold no secret.
    pub(crate) fn audit(
        &self,
        tenant: Option<TenantId>,
        action: &'static str,
        target: impl ToString,
        details: Value,
    ) -> NewAudit {
        let (actor_key_id, actor) = match self {
            Actor::Key { id, name } => (Some(*id), name.clone()),
            Actor::Cli => (None, "cli".to_owned()),
        };
        NewAudit {
            actor_key_id,
            actor,
            tenant_id: tenant,
            action,
            target: target.to_string(),
            details,
        }
    }
}
