//! Node liveness in Redis: this node's key, and forgetting the sessions of nodes whose
//! key is gone (or of this node's previous run).

use std::collections::HashSet;

use fred::prelude::*;

use super::{NODES, RedisPresence, scripts};
use crate::presence::{PresenceChange, PresenceError};
use crate::time::now_ms;

impl RedisPresence {
    pub(super) async fn heartbeat(&self) -> Result<(), PresenceError> {
        let pipe = self.redis.client.pipeline();
        let ttl = Expiration::PX(self.node_ttl.as_millis().try_into().unwrap_or(i64::MAX));
        let key = format!("node:{}", self.node_id);
        let _: () = pipe.set(&key, now_ms(), Some(ttl), None, false).await?;
        let _: () = pipe.sadd(NODES, self.node_id.as_str()).await?;
        let r: Result<((), i64), _> = pipe.all().await;
        self.failed(r).map(|_| ())
    }

    /// Forgets `node`'s sessions if its liveness key is gone (or `force`).
    pub(super) async fn reap(&self, node: &str, force: bool) -> Result<(), PresenceError> {
        let keys = vec![
            format!("node:{node}"),
            format!("node:{node}:sockets"),
            NODES.to_owned(),
        ];
        let args = vec![node.to_owned(), if force { "1" } else { "0" }.to_owned()];
        let gone: Vec<String> = self.failed(
            scripts::REAP
                .evalsha_with_reload(&self.redis.client, keys, args)
                .await,
        )?;
        if !gone.is_empty() {
            tracing::info!(
                node_id = node,
                agents = gone.len() / 2,
                "forgot a dead node's sessions"
            );
        }
        for pair in gone.chunks_exact(2) {
            if let (Ok(agent_id), Ok(tenant_id)) = (pair[0].parse(), pair[1].parse()) {
                self.publish(PresenceChange::Offline {
                    tenant_id,
                    agent_id,
                });
            }
        }
        Ok(())
    }

    pub(super) async fn reap_dead_nodes(&self) -> Result<(), PresenceError> {
        let nodes: HashSet<String> = self.failed(self.redis.client.smembers(NODES).await)?;
        for node in nodes.iter().filter(|n| **n != self.node_id) {
            self.reap(node, false).await?;
        }
        Ok(())
    }
}
