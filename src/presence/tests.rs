//! The contract every [`Presence`] keeps, run against the in-process registry and
//! against Redis (which must be reachable when `CI` is set; see [`redis_url`]).

use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, SessionId, TenantId};

use super::*;
use crate::time::now_ms;

pub(super) fn entry(
    tenant: TenantId,
    agent: AgentId,
    session: SessionId,
    node: &str,
) -> PresenceEntry {
    PresenceEntry {
        agent_id: agent,
        tenant_id: tenant,
        session_id: session,
        status: "online".into(),
        detail: None,
        capabilities: vec![],
        node_id: node.into(),
        connected_at: now_ms(),
        last_seen: now_ms(),
    }
}

/// `NEXUS_TEST_REDIS_URL`; `None` (skip) only when it is unset and `CI` is not.
pub(crate) fn redis_url() -> Option<String> {
    match std::env::var("NEXUS_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but NEXUS_TEST_REDIS_URL is not: Redis tests must run in CI")
        }
        Err(_) => {
            eprintln!("skipped: NEXUS_TEST_REDIS_URL is unset (set it to run against Redis)");
            None
        }
    }
}

/// Both implementations, each as node `node`.
async fn both(node: &str) -> Vec<Arc<dyn Presence>> {
    let ttl = Duration::from_secs(300);
    let mut all: Vec<Arc<dyn Presence>> = vec![Arc::new(MemoryPresence::new(ttl))];
    if let Some(url) = redis_url() {
        let conn = crate::redis::Redis::connect(&url, node)
            .await
            .expect("NEXUS_TEST_REDIS_URL is set but Redis is unreachable");
        let p = RedisPresence::start(conn, node.into(), ttl, Duration::from_secs(15))
            .await
            .expect("redis presence");
        all.push(Arc::new(p));
    }
    all
}

pub(super) fn node() -> String {
    format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn a_stale_session_cannot_remove_its_successor() {
    let n = node();
    for p in both(&n).await {
        let (t, a) = (TenantId::new_v7(), AgentId::new_v7());
        let (old, new) = (SessionId::new_v7(), SessionId::new_v7());
        assert_eq!(
            p.connected(entry(t, a, old, &n), None).await.expect("c1"),
            None
        );
        let stale = p.connected(entry(t, a, new, &n), None).await.expect("c2");
        assert_eq!(
            stale,
            Some(Stale {
                agent_id: a,
                node_id: n.clone(),
                session_id: old
            })
        );
        p.disconnected(a, old).await.expect("d1");
        let online = p.online(t).await.expect("online");
        assert_eq!(online.len(), 1);
        assert_eq!(online[0].session_id, new);
        p.disconnected(a, new).await.expect("d2");
        assert!(p.online(t).await.expect("online").is_empty());
    }
}

#[tokio::test]
async fn tenants_are_isolated_status_is_kept_and_published() {
    let n = node();
    for p in both(&n).await {
        let (t1, t2) = (TenantId::new_v7(), TenantId::new_v7());
        let (a, s) = (AgentId::new_v7(), SessionId::new_v7());
        p.connected(entry(t1, a, s, &n), None)
            .await
            .expect("connect");
        let mut changes = p.subscribe();
        let ready = Update::Ready {
            capabilities: vec!["code".into()],
        };
        p.update(a, s, ready).await.expect("ready");
        let status = Update::Status {
            status: "busy".into(),
            detail: Some("x".into()),
        };
        p.update(a, s, status).await.expect("status");
        assert!(p.online(t2).await.expect("t2").is_empty());
        let online = p.online(t1).await.expect("t1");
        assert_eq!(online[0].status, "busy");
        assert_eq!(online[0].detail.as_deref(), Some("x"));
        assert_eq!(online[0].capabilities, vec!["code".to_owned()]);
        assert_eq!(online[0].node_id, n);
        assert!(matches!(
            changes.try_recv(),
            Ok(PresenceChange::Status { .. })
        ));
        assert_eq!(p.locate(&[a]).await.expect("locate"), vec![(a, n.clone())]);
        p.disconnected(a, s).await.expect("bye");
        assert!(p.locate(&[a]).await.expect("locate").is_empty());
    }
}

#[tokio::test]
async fn memory_entries_past_their_ttl_are_not_online_and_are_swept() {
    let p = MemoryPresence::new(Duration::from_secs(300));
    let (t, a, s) = (TenantId::new_v7(), AgentId::new_v7(), SessionId::new_v7());
    let mut e = entry(t, a, s, "n1");
    e.last_seen -= 301_000;
    p.connected(e, None).await.expect("connect");
    let mut changes = p.subscribe();
    assert!(p.online(t).await.expect("online").is_empty());
    p.maintain().await.expect("maintain");
    assert!(matches!(
        changes.try_recv(),
        Ok(PresenceChange::Offline { .. })
    ));
}

#[tokio::test]
async fn a_tenant_at_its_cap_gets_no_new_agent_until_one_leaves() {
    let n = node();
    for p in both(&n).await {
        let t = TenantId::new_v7();
        let (a, b, c) = (AgentId::new_v7(), AgentId::new_v7(), AgentId::new_v7());
        let (sa, sb) = (SessionId::new_v7(), SessionId::new_v7());
        p.connected(entry(t, a, sa, &n), Some(2)).await.expect("a");
        p.connected(entry(t, b, sb, &n), Some(2)).await.expect("b");
        let refused = p
            .connected(entry(t, c, SessionId::new_v7(), &n), Some(2))
            .await;
        assert!(
            matches!(refused, Err(PresenceError::AtCapacity)),
            "{refused:?}"
        );
        // Refused means not recorded: c is not online.
        let online: Vec<AgentId> = p
            .online(t)
            .await
            .expect("online")
            .iter()
            .map(|e| e.agent_id)
            .collect();
        assert_eq!(online.len(), 2);
        assert!(!online.contains(&c));
        // An agent already counted may reconnect (its new session replaces its old one).
        let again = p
            .connected(entry(t, a, SessionId::new_v7(), &n), Some(2))
            .await;
        assert_eq!(again.expect("a again").map(|s| s.session_id), Some(sa));
        // Another tenant is not affected.
        p.connected(
            entry(
                TenantId::new_v7(),
                AgentId::new_v7(),
                SessionId::new_v7(),
                &n,
            ),
            Some(2),
        )
        .await
        .expect("other tenant");
        p.disconnected(b, sb).await.expect("b leaves");
        p.connected(
            entry(t, AgentId::new_v7(), SessionId::new_v7(), &n),
            Some(2),
        )
        .await
        .expect("a place is free");
    }
}
