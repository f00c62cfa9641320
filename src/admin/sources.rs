//! Operator actions on webhook sources besides adding one: rotate its signing secret
//! (with a grace period during which both secrets are accepted) or API token, remove it.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{Actor, AdminError};
use crate::store::{Secret, Source, SourceRotation, Store};

/// Longest grace period: a leaked secret should not stay valid for long.
const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Replaces the source's signing secret and/or API token at `now_ms`; the replaced
/// signing secret is accepted for `grace` more (each node: once its cached source is
/// read again, within `--cache-ttl`).
pub async fn rotate_source(
    store: &Store,
    actor: &Actor,
    id: Uuid,
    secret: Option<Secret>,
    api_token: Option<Secret>,
    grace: Duration,
    now_ms: i64,
) -> Result<Source, AdminError> {
    if secret.is_none() && api_token.is_none() {
        return Err(AdminError::field(
            "secret",
            "give a new secret or api_token to rotate",
        ));
    }
    if secret.as_ref().is_some_and(|s| s.expose().len() < 8) {
        return Err(AdminError::field("secret", "must be at least 8 characters"));
    }
    if grace > MAX_GRACE {
        return Err(AdminError::field("grace", "must be at most 7 days"));
    }
    let source = store.get_source(id).await?;
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let rotation = SourceRotation {
        secret,
        api_token,
        grace_until: now_ms.saturating_add(grace_ms),
    };
    let details = json!({
        "secret": rotation.secret.is_some(),
        "api_token": rotation.api_token.is_some(),
        "grace_s": grace.as_secs(),
    });
    let audit = actor.audit(Some(source.tenant_id), "source.rotate", id, details);
    Ok(store.rotate_source(id, &rotation, &audit).await?)
}

pub async fn remove_source(store: &Store, actor: &Actor, id: Uuid) -> Result<(), AdminError> {
    let source = store.get_source(id).await?;
    store.remove_source(id).await?;
    let details = json!({ "kind": source.kind, "external_id": source.external_id });
    let audit = actor.audit(Some(source.tenant_id), "source.delete", id, details);
    Ok(store.record_audit(&audit).await?)
}
