//! Idempotency keys of inbox events, looked up many at once (the batch emit API).

use std::collections::{HashMap, HashSet};

use nexus_proto::{AgentId, EventId, Seq};
use uuid::Uuid;

use super::dialect::{self, CHUNK, on_pool};
use super::{Result, Store};

impl Store {
    /// The events earlier requests created with these `(agent, key)` pairs, for the
    /// pairs that have one: [`Store::find_idempotent`] for many pairs, one query per
    /// chunk instead of one per pair.
    pub async fn find_idempotent_many(
        &self,
        pairs: &[(AgentId, String)],
    ) -> Result<HashMap<(AgentId, String), (EventId, Seq)>> {
        let mut found = HashMap::new();
        // Two lists of binds per statement: half a chunk of pairs stays under the limit.
        for chunk in pairs.chunks(CHUNK / 2) {
            let agents: Vec<AgentId> = unique(chunk.iter().map(|(a, _)| *a));
            let keys: Vec<&str> = unique(chunk.iter().map(|(_, k)| k.as_str()));
            // Both columns of the partial unique index, each by IN: point lookups. A pair
            // of one agent's id and another's key may come back too; it is dropped below.
            let sql = format!(
                "SELECT agent_id, idempotency_key, event_id, seq FROM inbox \
                 WHERE idempotency_key IS NOT NULL AND agent_id IN ({}) AND idempotency_key IN ({})",
                dialect::placeholders(self.backend(), agents.len()),
                dialect::placeholders_after(self.backend(), agents.len(), keys.len()),
            );
            let rows: Vec<(Uuid, String, Uuid, i64)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for agent in &agents {
                    q = q.bind(*agent.as_uuid());
                }
                for key in &keys {
                    q = q.bind((*key).to_owned());
                }
                q.fetch_all(p).await
            })?;
            let wanted: HashSet<(AgentId, &str)> =
                chunk.iter().map(|(a, k)| (*a, k.as_str())).collect();
            for (agent, key, id, seq) in rows {
                let agent = AgentId::from_uuid(agent);
                if wanted.contains(&(agent, key.as_str())) {
                    let hit = (EventId::from_uuid(id), Seq::new(seq.max(0) as u64));
                    found.insert((agent, key), hit);
                }
            }
        }
        Ok(found)
    }
}

/// The distinct items, in first-seen order.
fn unique<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|x| seen.insert(*x)).collect()
}
