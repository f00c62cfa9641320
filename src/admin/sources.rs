//! Operator actions on webhook sources: add one, rotate its signing secret (with a grace
//! period during which both secrets are accepted) or API token, remove it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nexus_proto::{AgentId, EventType, TenantId};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, AdminError, agent_of, check_name};
use crate::store::{
    IngestRule, NewSource, Secret, Source, SourceKind, SourceRotation, Store, putio_external_id,
};

/// What `nexus source add` registers.
pub struct SourceSpec {
    pub tenant: TenantId,
    pub kind: SourceKind,
    /// Slack team id, ClickUp webhook id, or the ingest source's name; none for put.io
    /// (its token stands for it).
    pub external_id: Option<String>,
    /// None for put.io: its token is generated.
    pub secret: Option<String>,
    pub api_token: Option<String>,
    pub bot_user: Option<String>,
    pub to_agent: Option<AgentId>,
    pub to_alias: Option<String>,
    pub event: Option<EventType>,
}

/// Adds a source. A put.io source gets a generated token, answered once in
/// `callback_path`: put.io cannot sign its callbacks, so the URL is the credential.
pub async fn add_source(
    store: &Store,
    actor: &Actor,
    spec: SourceSpec,
) -> Result<Source, AdminError> {
    let (external_id, secret, callback_path) = match spec.kind {
        SourceKind::Putio => {
            if spec.secret.is_some() || spec.external_id.is_some() {
                return Err(AdminError::Invalid(
                    "a put.io source takes no secret or name: its token is generated".into(),
                ));
            }
            let token = putio_token();
            let path = format!("/webhooks/putio/{token}");
            (putio_external_id(&token), token, Some(path))
        }
        _ => {
            let external_id = spec
                .external_id
                .ok_or_else(|| AdminError::field("external_id", "is required"))?;
            check_name("external_id", &external_id)?;
            let secret = spec.secret.unwrap_or_default();
            if secret.len() < 8 {
                return Err(AdminError::Invalid(
                    "the secret must be at least 8 characters".into(),
                ));
            }
            (external_id, secret, None)
        }
    };
    let rule = rule(
        store,
        spec.kind,
        spec.tenant,
        spec.to_agent,
        spec.to_alias,
        spec.event,
    )
    .await?;
    store.get_tenant(spec.tenant).await?;
    let mut source = store
        .create_source(NewSource {
            tenant_id: spec.tenant,
            kind: spec.kind,
            external_id,
            secret: Secret::new(secret),
            api_token: spec.api_token.map(Secret::new),
            bot_user: spec.bot_user,
            rule,
        })
        .await?;
    let details = json!({ "kind": source.kind, "external_id": source.external_id });
    let audit = actor.audit(Some(source.tenant_id), "source.create", source.id, details);
    store.record_audit(&audit).await?;
    source.callback_path = callback_path;
    Ok(source)
}

/// The delivery rule of an ingest or put.io source (a put.io transfer is always a
/// `context_update`); none for the others.
async fn rule(
    store: &Store,
    kind: SourceKind,
    tenant: TenantId,
    to_agent: Option<AgentId>,
    to_alias: Option<String>,
    event: Option<EventType>,
) -> Result<Option<IngestRule>, AdminError> {
    let (default, allowed): (_, &[EventType]) = match kind {
        SourceKind::Ingest => (
            EventType::WakeUp,
            &[EventType::WakeUp, EventType::ContextUpdate],
        ),
        SourceKind::Putio => (EventType::ContextUpdate, &[EventType::ContextUpdate]),
        SourceKind::Slack | SourceKind::Clickup => return Ok(None),
    };
    if to_agent.is_none() && to_alias.is_none() {
        return Err(AdminError::Invalid(format!(
            "{} source needs --to-agent or --to-alias",
            match kind {
                SourceKind::Putio => "a put.io",
                _ => "an ingest",
            }
        )));
    }
    if let Some(agent) = to_agent {
        agent_of(store, tenant, agent).await?;
    }
    let event = event.unwrap_or(default);
    if !allowed.contains(&event) {
        let names: Vec<_> = allowed.iter().map(|e| e.as_str()).collect();
        return Err(AdminError::Invalid(format!(
            "--event-type must be {}",
            names.join(" or ")
        )));
    }
    Ok(Some(IngestRule {
        to_agent,
        to_alias: to_alias.map(|a| a.trim_start_matches('@').to_owned()),
        event,
    }))
}

/// 256 random bits, URL-safe: the put.io callback's only credential.
fn putio_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

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
    if secret.is_some() && store.get_source(id).await?.kind == SourceKind::Putio {
        return Err(AdminError::field(
            "secret",
            "a put.io source's token is its callback URL: remove the source and add a new one",
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
