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

fn seq_i64(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// An agent's seq of its newest event, own or tenant-wide, in SQL: needs the aliases
/// `c` (its `agent_cursors` row, NULL for an agent older than the tenant log) and `t`
/// (its tenant).
pub(super) const HEAD_SEQ: &str = "(COALESCE(c.last_seq, 0) + t.log_head - COALESCE(c.mark, 0))";

/// Where an own event sits among its tenant's log entries: after those up to `mark`,
/// after the agent's previous own event (whose mark was `prev_mark`).
#[derive(Debug, Clone, Copy)]
struct Marks {
    mark: i64,
    prev_mark: i64,
}

/// Hands out seqs: each agent's batch ends at its new last_seq. Its first event follows
/// the mark the agent had before; the rest follow each other (all at the tenant's head).
fn number(
    events: &[NewInboxEvent],
    agents: &[(AgentId, u64)],
    last: &HashMap<AgentId, (u64, i64)>,
    heads: &HashMap<AgentId, i64>,
    now: i64,
) -> Vec<(InboxEvent, Marks)> {
    let mut next: HashMap<AgentId, (u64, i64)> = agents
        .iter()
        .map(|(a, n)| {
            let (newest, prev) = last.get(a).copied().unwrap_or((*n, 0));
            (*a, (newest.saturating_sub(*n) + 1, prev))
        })
        .collect();
    events
        .iter()
        .map(|e| {
            let head = heads.get(&e.agent).copied().unwrap_or(0);
            let slot = next.entry(e.agent).or_insert((1, head));
            let stored = InboxEvent {
                agent: e.agent,
                seq: Seq::new(slot.0),
                event_id: e.event_id,
                kind: e.kind,
                data: e.data.clone(),
                trace_id: e.trace_id.clone(),
                created_at: now,
            };
            let marks = Marks {
                mark: head,
                prev_mark: slot.1,
            };
            *slot = (slot.0 + 1, head);
            (stored, marks)
        })
        .collect()
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

    /// One attempt at [`Store::append_inbox`]. The agents' tenant rows are held first
    /// (FOR SHARE on PostgreSQL: a tenant-wide append waits for this one and the other
    /// way round, so each event's mark is exact); then `agents` (sorted, with their event
    /// counts) are locked by a multi-row upsert that takes each row's lock as it reaches
    /// it, in the order of its VALUES.
    async fn append_inbox_tx(
        &self,
        events: &[NewInboxEvent],
        agents: &[(AgentId, u64)],
        retention: Retention,
    ) -> Result<Vec<InboxEvent>> {
        let now = crate::time::now_ms();
        let out: Vec<InboxEvent> = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut heads: HashMap<AgentId, i64> = HashMap::with_capacity(agents.len());
            for chunk in agents.chunks(CHUNK) {
                let sql = format!(
                    "SELECT a.id, t.log_head FROM agents a JOIN tenants t ON t.id = a.tenant_id \
                     WHERE a.id IN ({}) ORDER BY t.id {}",
                    dialect::placeholders(self.backend(), chunk.len()),
                    dialect::share_lock_of(self.backend(), "t"),
                );
                let mut q = sqlx::query_as::<_, (Uuid, i64)>(sqlx::AssertSqlSafe(sql));
                for (agent, _) in chunk {
                    q = q.bind(*agent.as_uuid());
                }
                for (agent, head) in q.fetch_all(&mut *tx).await? {
                    heads.insert(AgentId::from_uuid(agent), head);
                }
            }
            if heads.len() < agents.len() {
                return Err(StoreError::NotFound("agent"));
            }
            // (agent, its new last_seq, the mark before this append)
            let mut last = HashMap::with_capacity(agents.len());
            for chunk in agents.chunks(CHUNK) {
                // A cursor row missing (an agent older than the tenant log) counts as
                // subscribed at 0: last_seq = n + head, prev_mark = 0.
                let sql = format!(
                    "INSERT INTO agent_cursors (agent_id, last_seq, mark, acked_seq, prev_mark) VALUES {} \
                     ON CONFLICT (agent_id) DO UPDATE SET \
                     last_seq = agent_cursors.last_seq - agent_cursors.mark + excluded.last_seq, \
                     prev_mark = agent_cursors.mark, mark = excluded.mark \
                     RETURNING agent_id, last_seq, prev_mark",
                    dialect::values(self.backend(), chunk.len(), 3, ", 0, 0")
                );
                let mut q = sqlx::query_as::<_, (Uuid, i64, i64)>(sqlx::AssertSqlSafe(sql));
                for (agent, n) in chunk {
                    let head = heads.get(agent).copied().unwrap_or(0);
                    q = q.bind(*agent.as_uuid()).bind(head + *n as i64).bind(head);
                }
                for (agent, seq, prev) in q.fetch_all(&mut *tx).await.map_err(fk_as_agent)? {
                    last.insert(AgentId::from_uuid(agent), (seq as u64, prev));
                }
            }
            let out = number(events, agents, &last, &heads, now);
            for (chunk_events, chunk_new) in out.chunks(CHUNK).zip(events.chunks(CHUNK)) {
                let sql = format!(
                    "INSERT INTO inbox (agent_id, seq, event_id, type, payload, trace_id, idempotency_key, created_at, expires_at, mark, prev_mark) VALUES {}",
                    dialect::values(self.backend(), chunk_events.len(), 11, "")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for ((e, marks), n) in chunk_events.iter().zip(chunk_new) {
                    q = q
                        .bind(*e.agent.as_uuid())
                        .bind(seq_i64(e.seq))
                        .bind(*e.event_id.as_uuid())
                        .bind(e.kind.as_str())
                        .bind(e.data.to_string())
                        .bind(e.trace_id.as_deref().map(str::to_owned))
                        .bind(n.idempotency_key.clone())
                        .bind(now)
                        .bind(now.saturating_add(n.ttl_ms))
                        .bind(marks.mark)
                        .bind(marks.prev_mark);
                }
                q.execute(&mut *tx).await.map_err(super::conflict_as("idempotency key"))?;
            }
            for (agent, (newest, _)) in &last {
                if *newest > retention.cap {
                    sqlx::query("DELETE FROM inbox WHERE agent_id = $1 AND seq <= $2")
                        .bind(*agent.as_uuid())
                        .bind((*newest - retention.cap) as i64)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            out.into_iter().map(|(e, _)| e).collect()
        });
        Ok(out)
    }

    /// The agent's cursor (its newest seq counts its tenant's log); zero for an agent
    /// that never received anything, or an unknown one.
    pub async fn cursor(&self, agent: AgentId) -> Result<Cursor> {
        let sql = format!(
            "SELECT {HEAD_SEQ}, COALESCE(c.acked_seq, 0) FROM agents a JOIN tenants t ON t.id = a.tenant_id \
             LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id = $1"
        );
        let row: Option<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
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
                "SELECT a.id, {HEAD_SEQ}, a.status, a.tokens_valid_after, t.status FROM agents a \
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
