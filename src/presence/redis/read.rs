//! Reading Redis presence: key names, and the online list as every node (and the CLI)
//! reads it.

use std::collections::HashMap;

use fred::prelude::*;
use nexus_proto::{AgentId, SessionId, TenantId};

use super::scripts;
use crate::presence::{PresenceEntry, PresenceError};
use crate::redis::Redis;
use crate::time::now_ms;

pub(super) fn socket_key(s: SessionId) -> String {
    format!("socket:{s}")
}

pub(super) fn agent_key(a: AgentId) -> String {
    format!("agent:{a}")
}

pub(super) fn tenant_key(t: TenantId) -> String {
    format!("tenant:{t}:agents")
}

/// The tenant's online agents as Redis has them, by agent id: what every node's
/// [`Presence::online`] answers, and what `nexus presence list` reads without a node.
pub async fn online_in(
    redis: &Redis,
    tenant: TenantId,
) -> Result<Vec<PresenceEntry>, PresenceError> {
    let r: Vec<Value> = scripts::ONLINE
        .evalsha_with_reload(
            &redis.client,
            vec![tenant_key(tenant)],
            vec![now_ms().to_string()],
        )
        .await?;
    let mut out = Vec::with_capacity(r.len() / 2);
    let mut it = r.into_iter();
    while let (Some(sid), Some(fields)) = (it.next(), it.next()) {
        out.push(parse_entry(tenant, sid, fields)?);
    }
    out.sort_by_key(|e| e.agent_id);
    Ok(out)
}

fn parse_entry(
    tenant: TenantId,
    sid: Value,
    fields: Value,
) -> Result<PresenceEntry, PresenceError> {
    let corrupt = |what: &str| PresenceError::Corrupt(what.to_owned());
    let mut h: HashMap<String, String> = HashMap::new();
    let mut it = fields.into_array().into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        h.insert(
            k.as_string().unwrap_or_default(),
            v.as_string().unwrap_or_default(),
        );
    }
    let get = |k: &str| h.get(k).map(String::as_str).unwrap_or_default();
    let ms = |k: &str| get(k).parse::<i64>().unwrap_or_default();
    Ok(PresenceEntry {
        agent_id: get("agent_id").parse().map_err(|_| corrupt("agent_id"))?,
        tenant_id: tenant,
        session_id: sid
            .as_string()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("socket id"))?,
        status: get("status").to_owned(),
        detail: Some(get("detail").to_owned()).filter(|d| !d.is_empty()),
        capabilities: serde_json::from_str(get("capabilities")).unwrap_or_default(),
        node_id: get("node_id").to_owned(),
        connected_at: ms("connected_at"),
        last_seen: ms("last_seen"),
    })
}
