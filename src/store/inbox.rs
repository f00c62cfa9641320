//! The durable per-agent inbox and delivery cursors (DESIGN §8).
//!
//! `seq` is assigned by bumping the agent's row in `agent_cursors` inside the same
//! transaction that inserts the events: the row lock orders concurrent writers (even
//! on different nodes), so an agent's events commit in `seq` order with no holes.

use std::collections::HashMap;
use std::sync::Arc;

use nexus_proto::{AgentId, EventId, EventType, Seq};
use uuid::Uuid;

use super::dialect::{self, CHUNK, on_pool, on_writer};
use super::{Result, Store, StoreError, retry_contended};

/// An event to append to one agent's inbox.
#[derive(Debug, Clone)]
pub struct NewInboxEvent {
    pub agent: AgentId,
    pub event_id: EventId,
    pub kind: EventType,
    /// The event's `data`, already serialized: stored and sent verbatim.
    pub data: Arc<str>,
    pub trace_id: Option<Arc<str>>,
    pub idempotency_key: Option<String>,
    /// How long it is kept (its tenant's tier's inbox retention), ms.
    pub ttl_ms: i64,
}

/// A stored event, as replayed and pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    pub agent: AgentId,
    pub seq: Seq,
    pub event_id: EventId,
    pub kind: EventType,
    pub data: Arc<str>,
    pub trace_id: Option<Arc<str>>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub last_seq: Seq,
    pub acked_seq: Seq,
}

/// What the reconcile of live sessions needs to know about one agent.
#[derive(Debug, Clone, Copy)]
pub struct LiveState {
    pub agent: AgentId,
    pub committed: Seq,
    pub active: bool,
    /// Its tenant is suspended.
    pub suspended: bool,
    /// Tokens issued before this (Unix ms) are revoked.
    pub tokens_valid_after: i64,
}

/// Retention: an event goes when its `expires_at` passes (set from its tenant's tier,
/// see [`NewInboxEvent::ttl_ms`]) or when it is more than `cap` behind its agent's newest.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `--inbox-ttl`: also how long the records of provider writes are kept.
    pub ttl_ms: i64,
    pub cap: u64,
    /// The audit log's, swept with the inbox (`--audit-retention`).
    pub audit_ttl_ms: i64,
    /// Sessions', by their start (`--session-retention`); `None` keeps them.
    pub session_ttl_ms: Option<i64>,
}

type EventRow = (i64, Uuid, String, String, Option<String>, i64);

fn event_from_row(
    agent: AgentId,
    (seq, id, kind, data, trace, created_at): EventRow,
) -> Result<InboxEvent> {
    Ok(InboxEvent {
        agent,
        seq: Seq::new(u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq}")))?),
        event_id: EventId::from_uuid(id),
        kind: kind
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("event type {kind:?}")))?,
        data: data.into(),
        trace_id: trace.map(Into::into),
        created_at,
    })
}

fn seq_i64(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

impl Store {
    /// Appends `events` in one transaction and returns them with their `seq`, in the
    /// given order. Several events for one agent get consecutive seqs in that order.
    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
    pub async fn append_inbox(
        &self,
        events: &[NewInboxEvent],
        retention: Retention,
    ) -> Result<Vec<InboxEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts: HashMap<AgentId, u64> = HashMap::new();
        for e in events {
            *counts.entry(e.agent).or_default() += 1;
        }
        // Cursor rows are locked in ascending agent order, here and in `save_acks`, so
        // writers on several nodes never wait on each other in a cycle.
        let mut agents: Vec<(AgentId, u64)> = counts.into_iter().collect();
        agents.sort_unstable_by_key(|(a, _)| *a);
        retry_contended("append_inbox", || {
            self.append_inbox_tx(events, &agents, retention)
        })
        .await
    }

    /// One attempt at [`Store::append_inbox`]: `agents` (sorted, with their event counts)
    /// are locked by the first statement, a multi-row upsert that takes each row's lock
    /// as it reaches it, in the order of its VALUES.
    async fn append_inbox_tx(
        &self,
        events: &[NewInboxEvent],
        agents: &[(AgentId, u64)],
        retention: Retention,
    ) -> Result<Vec<InboxEvent>> {
        let now = crate::time::now_ms();
        let out: Vec<InboxEvent> = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut last = HashMap::with_capacity(agents.len());
            for chunk in agents.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO agent_cursors (agent_id, last_seq, acked_seq) VALUES {} \
                     ON CONFLICT (agent_id) DO UPDATE SET last_seq = agent_cursors.last_seq + excluded.last_seq \
                     RETURNING agent_id, last_seq",
                    dialect::values(self.backend(), chunk.len(), 2, ", 0")
                );
                let mut q = sqlx::query_as::<_, (Uuid, i64)>(sqlx::AssertSqlSafe(sql));
                for (agent, n) in chunk {
                    q = q.bind(*agent.as_uuid()).bind(*n as i64);
                }
                for (agent, seq) in q.fetch_all(&mut *tx).await.map_err(fk_as_agent)? {
                    last.insert(AgentId::from_uuid(agent), seq as u64);
                }
            }
            // Hand out seqs: each agent's batch ends at its new last_seq.
            let mut next: HashMap<AgentId, u64> = agents
                .iter()
                .map(|(a, n)| (*a, last.get(a).copied().unwrap_or(*n).saturating_sub(*n) + 1))
                .collect();
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                let slot = next.entry(e.agent).or_insert(1);
                out.push(InboxEvent {
                    agent: e.agent,
                    seq: Seq::new(*slot),
                    event_id: e.event_id,
                    kind: e.kind,
                    data: e.data.clone(),
                    trace_id: e.trace_id.clone(),
                    created_at: now,
                });
                *slot += 1;
            }
            for (chunk_events, chunk_new) in out.chunks(CHUNK).zip(events.chunks(CHUNK)) {
                let sql = format!(
                    "INSERT INTO inbox (agent_id, seq, event_id, type, payload, trace_id, idempotency_key, created_at, expires_at) VALUES {}",
                    dialect::values(self.backend(), chunk_events.len(), 9, "")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (e, n) in chunk_events.iter().zip(chunk_new) {
                    q = q
                        .bind(*e.agent.as_uuid())
                        .bind(seq_i64(e.seq))
                        .bind(*e.event_id.as_uuid())
                        .bind(e.kind.as_str())
                        .bind(e.data.to_string())
                        .bind(e.trace_id.as_deref().map(str::to_owned))
                        .bind(n.idempotency_key.clone())
                        .bind(now)
                        .bind(now.saturating_add(n.ttl_ms));
                }
                q.execute(&mut *tx).await.map_err(super::conflict_as("idempotency key"))?;
            }
            for (agent, newest) in &last {
                if *newest > retention.cap {
                    sqlx::query("DELETE FROM inbox WHERE agent_id = $1 AND seq <= $2")
                        .bind(*agent.as_uuid())
                        .bind((*newest - retention.cap) as i64)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            out
        });
        Ok(out)
    }

    /// Up to `limit` events of `agent` after `after`, in seq order.
    #[tracing::instrument(level = "debug", skip_all, fields(agent_id = %agent, after = after.get(), limit))]
    pub async fn read_inbox(
        &self,
        agent: AgentId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEvent>> {
        // The limit is written into the SQL, not bound: SQLite plans around a bound
        // LIMIT's value, so rebinding it recompiled the statement on every call (8 % of
        // the node's CPU during a connect storm). Each page size is its own cached statement.
        let sql = format!(
            "SELECT seq, event_id, type, payload, trace_id, created_at FROM inbox \
             WHERE agent_id = $1 AND seq > $2 ORDER BY seq LIMIT {limit}"
        );
        let rows: Vec<EventRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*agent.as_uuid())
                .bind(seq_i64(after))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(|r| event_from_row(agent, r)).collect()
    }

    /// The agent's cursor; zero for an agent that never received anything.
    pub async fn cursor(&self, agent: AgentId) -> Result<Cursor> {
        let row: Option<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT last_seq, acked_seq FROM agent_cursors WHERE agent_id = $1")
                .bind(*agent.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map_or_else(Cursor::default, |(last, acked)| Cursor {
            last_seq: Seq::new(last.max(0) as u64),
            acked_seq: Seq::new(acked.max(0) as u64),
        }))
    }

    /// Each agent's last committed seq, whether it is still active and since when its
    /// tokens are valid, for the reconcile of live sessions (one query per chunk).
    pub async fn live_states(&self, agents: &[AgentId]) -> Result<Vec<LiveState>> {
        let mut out = Vec::with_capacity(agents.len());
        for chunk in agents.chunks(CHUNK) {
            let sql = format!(
                "SELECT a.id, COALESCE(c.last_seq, 0), a.status, a.tokens_valid_after, t.status FROM agents a \
                 JOIN tenants t ON t.id = a.tenant_id \
                 LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id IN ({})",
                dialect::placeholders(self.backend(), chunk.len())
            );
            let rows: Vec<(Uuid, i64, String, i64, String)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for agent in chunk {
                    q = q.bind(*agent.as_uuid());
                }
                q.fetch_all(p).await
            })?;
            out.extend(
                rows.into_iter()
                    .map(|(a, s, status, valid_after, tenant)| LiveState {
                        agent: AgentId::from_uuid(a),
                        committed: Seq::new(s.max(0) as u64),
                        active: status == "active",
                        suspended: tenant == "suspended",
                        tokens_valid_after: valid_after,
                    }),
            );
        }
        Ok(out)
    }

    /// Records cumulative acks; an ack never moves a cursor backwards. One statement
    /// per chunk: a statement per agent was thousands of round trips a second under load.
    #[tracing::instrument(level = "debug", skip_all, fields(acks = acks.len()))]
    pub async fn save_acks(&self, acks: &[(AgentId, Seq)]) -> Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        // Acks come in any order; rows are locked in ascending agent order, as
        // `append_inbox` locks them.
        let mut acks = acks.to_vec();
        acks.sort_unstable_by_key(|(a, _)| *a);
        retry_contended("save_acks", || self.save_acks_tx(&acks)).await
    }

    /// One attempt at [`Store::save_acks`], `acks` sorted by agent.
    async fn save_acks_tx(&self, acks: &[(AgentId, Seq)]) -> Result<()> {
        let max = dialect::greatest(self.backend());
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            for chunk in acks.chunks(CHUNK) {
                // An UPDATE … FROM locks rows in whatever order its plan visits them:
                // lock them first, in agent order.
                if let Some(sql) = dialect::lock_cursors_in_order(self.backend(), chunk.len()) {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (agent, _) in chunk {
                        q = q.bind(*agent.as_uuid());
                    }
                    q.execute(&mut *tx).await?;
                }
                let sql = format!(
                    "WITH v (agent_id, seq) AS (VALUES {}) \
                     UPDATE agent_cursors SET acked_seq = {max}(agent_cursors.acked_seq, v.seq) \
                     FROM v WHERE agent_cursors.agent_id = v.agent_id",
                    dialect::values(self.backend(), chunk.len(), 2, "")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (agent, seq) in chunk {
                    q = q.bind(*agent.as_uuid()).bind(seq_i64(*seq));
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The event an earlier request with this idempotency key created, if any.
    pub async fn find_idempotent(
        &self,
        agent: AgentId,
        key: &str,
    ) -> Result<Option<(EventId, Seq)>> {
        let row: Option<(Uuid, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT event_id, seq FROM inbox WHERE agent_id = $1 AND idempotency_key = $2")
                .bind(*agent.as_uuid())
                .bind(key.to_owned())
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map(|(id, seq)| (EventId::from_uuid(id), Seq::new(seq.max(0) as u64))))
    }

    /// Deletes up to `limit` expired events; returns how many went.
    pub async fn delete_expired_inbox(&self, now_ms: i64, limit: u32) -> Result<u64> {
        self.delete_aged("inbox", "agent_id, seq", "expires_at", now_ms, limit)
            .await
    }
}

/// An insert naming an unknown agent trips the foreign key: say which.
fn fk_as_agent(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("agent"),
        _ => StoreError::from(e),
    }
}
