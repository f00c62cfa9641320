//! What only the Redis presence does: writing this node's sessions back after an
//! outage, without restoring one that a newer session replaced meanwhile, and taking a
//! dead node's agents offline.

use std::sync::atomic::Ordering;
use std::time::Duration;

use fred::prelude::*;
use nexus_proto::{AgentId, SessionId, TenantId};

use super::RedisPresence;
use crate::presence::tests::{entry, node, redis_url};
use crate::presence::{Presence, Stale};

async fn presence(url: &str, node: &str, node_ttl: Duration) -> RedisPresence {
    let redis = crate::redis::Redis::connect(url, node)
        .await
        .expect("NEXUS_TEST_REDIS_URL is set but Redis is unreachable");
    RedisPresence::start(redis, node.into(), Duration::from_secs(300), node_ttl)
        .await
        .expect("presence")
}

#[tokio::test]
async fn a_rebuild_restores_lost_entries_but_not_superseded_ones() {
    let Some(url) = redis_url() else { return };
    let (n1, n2) = (node(), node());
    let p1 = presence(&url, &n1, Duration::from_secs(15)).await;
    let p2 = presence(&url, &n2, Duration::from_secs(15)).await;
    let t = TenantId::new_v7();
    let (kept, taken) = (AgentId::new_v7(), AgentId::new_v7());
    let (s_kept, s_taken, s_newer) = (
        SessionId::new_v7(),
        SessionId::new_v7(),
        SessionId::new_v7(),
    );
    p1.connected(entry(t, kept, s_kept, &n1), None)
        .await
        .expect("c1");
    p1.connected(entry(t, taken, s_taken, &n1), None)
        .await
        .expect("c2");
    // While node 1 "could not tell": Redis lost `kept`, and `taken` moved to node 2.
    let _: i64 = p1
        .redis
        .client
        .del(vec![format!("agent:{kept}"), format!("socket:{s_kept}")])
        .await
        .expect("del");
    p2.connected(entry(t, taken, s_newer, &n2), None)
        .await
        .expect("c3");

    p1.rebuild.store(true, Ordering::Release);
    let stale = p1.maintain().await.expect("maintain");
    assert_eq!(
        stale,
        vec![Stale {
            agent_id: taken,
            node_id: n1.clone(),
            session_id: s_taken
        }],
        "only the superseded session is to close"
    );
    let online = p2.online(t).await.expect("online");
    let sessions: Vec<(AgentId, SessionId)> =
        online.iter().map(|e| (e.agent_id, e.session_id)).collect();
    let mut want = vec![(kept, s_kept), (taken, s_newer)];
    want.sort();
    assert_eq!(sessions, want);
}

#[tokio::test]
async fn a_dead_nodes_agents_are_taken_offline_by_the_others() {
    let Some(url) = redis_url() else { return };
    let (dead, alive) = (node(), node());
    let p_dead = presence(&url, &dead, Duration::from_millis(300)).await;
    let p_alive = presence(&url, &alive, Duration::from_secs(15)).await;
    let (t, a) = (TenantId::new_v7(), AgentId::new_v7());
    p_dead
        .connected(entry(t, a, SessionId::new_v7(), &dead), None)
        .await
        .expect("c");
    assert_eq!(p_alive.online(t).await.expect("online").len(), 1);
    // The dead node stops renewing; once its key expires, nobody lists its agent and
    // the next maintenance round elsewhere clears its keys.
    let redis = p_alive.redis.client.clone();
    let key = format!("node:{dead}");
    while redis.exists::<i64, _>(key.as_str()).await.expect("exists") == 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p_alive.online(t).await.expect("online").is_empty());
    let mut changes = p_alive.subscribe();
    p_alive.maintain().await.expect("maintain");
    assert!(changes.try_recv().is_ok(), "offline published");
    let left: Option<String> = redis.get(format!("agent:{a}")).await.expect("get");
    assert_eq!(left, None);
}
