//! Tenant-wide events, stored once in the tenant's log, and each agent's stream: its
//! own inbox merged with the log from its subscription point, in one seq space per
//! agent (migration 0015 explains the marks).
//!
//! Log entry `n` sits after the agent's own events with `mark < n` and before those
//! with `mark >= n`; so its seq is fixed by either neighbour: `s + (n - m)` after an own
//! event `(s, m)` (or the cursor), `s - 1 - (m - n)` before one.

use std::sync::Arc;

use nexus_proto::{AgentId, EventId, EventType, Seq, TenantId};
use uuid::Uuid;

use super::dialect::{self, CHUNK, on_pool, on_writer};
use super::inbox::{HEAD_SEQ, InboxEvent};
use super::{Result, Store, StoreError};

/// A tenant-wide event to append: its id, type, `data` (JSON text) and trace id.
pub type NewLogEvent = (EventId, EventType, Arc<str>, Option<Arc<str>>);

/// A tenant-wide event as stored: `n` is its place in the tenant's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub n: u64,
    pub event_id: EventId,
    pub kind: EventType,
    pub data: Arc<str>,
    pub trace_id: Option<Arc<str>>,
    pub created_at: i64,
}

impl LogEvent {
    /// This entry as agent `agent` sees it, at `seq`.
    pub fn for_agent(&self, agent: AgentId, seq: Seq) -> InboxEvent {
        InboxEvent {
            agent,
            seq,
            event_id: self.event_id,
            kind: self.kind,
            data: self.data.clone(),
            trace_id: self.trace_id.clone(),
            created_at: self.created_at,
        }
    }
}

/// Where an agent stands against its tenant's log: its newest own event's seq and the
/// log head when it was appended. Entries after `mark` follow it: `seq = last + (n - mark)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub agent: AgentId,
    pub last: u64,
    pub mark: u64,
}

impl Anchor {
    /// The agent's seq of log entry `n`, if it follows the anchor.
    pub fn seq_of(&self, n: u64) -> Option<Seq> {
        (n > self.mark).then(|| Seq::new(self.last + (n - self.mark)))
    }
}

type OwnRow = (i64, i64, i64, Uuid, String, String, Option<String>, i64);
type LogRow = (i64, Uuid, String, String, Option<String>, i64);

fn count(v: i64) -> u64 {
    v.max(0) as u64
}

fn parse_kind(kind: &str) -> Result<EventType> {
    kind.parse()
        .map_err(|_| StoreError::Corrupt(format!("event type {kind:?}")))
}

fn log_event((n, id, kind, data, trace, created_at): LogRow) -> Result<LogEvent> {
    Ok(LogEvent {
        n: count(n),
        event_id: EventId::from_uuid(id),
        kind: parse_kind(&kind)?,
        data: data.into(),
        trace_id: trace.map(Into::into),
        created_at,
    })
}

/// An own event with where it sits in the log.
struct Own {
    event: InboxEvent,
    mark: u64,
    prev_mark: u64,
}

impl Store {
    /// Appends `events` to `tenant`'s log in one transaction (the tenant row's lock
    /// orders it against inbox appends) and drops entries more than `cap` behind.
    pub async fn append_tenant_log(
        &self,
        tenant: TenantId,
        events: &[NewLogEvent],
        ttl_ms: i64,
        cap: u64,
    ) -> Result<Vec<LogEvent>> {
        let now = crate::time::now_ms();
        let added = events.len() as i64;
        let head: i64 = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let head: Option<(i64,)> = sqlx::query_as(
                "UPDATE tenants SET log_head = log_head + $1 WHERE id = $2 RETURNING log_head",
            )
            .bind(added)
            .bind(*tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let (head,) = head.ok_or(StoreError::NotFound("tenant"))?;
            for (i, chunk) in events.chunks(CHUNK).enumerate() {
                let sql = format!(
                    "INSERT INTO tenant_log (tenant_id, n, event_id, type, payload, trace_id, created_at, expires_at) VALUES {}",
                    dialect::values(self.backend(), chunk.len(), 8, "")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (j, (id, kind, data, trace)) in chunk.iter().enumerate() {
                    let n = head - added + (i * CHUNK + j) as i64 + 1;
                    q = q
                        .bind(*tenant.as_uuid())
                        .bind(n)
                        .bind(*id.as_uuid())
                        .bind(kind.as_str())
                        .bind(data.to_string())
                        .bind(trace.as_deref().map(str::to_owned))
                        .bind(now)
                        .bind(now.saturating_add(ttl_ms));
                }
                q.execute(&mut *tx).await?;
            }
            if count(head) > cap {
                sqlx::query("DELETE FROM tenant_log WHERE tenant_id = $1 AND n <= $2")
                    .bind(*tenant.as_uuid())
                    .bind(head - cap as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            head
        });
        Ok(events
            .iter()
            .enumerate()
            .map(|(i, (id, kind, data, trace))| LogEvent {
                n: count(head - added + i as i64 + 1),
                event_id: *id,
                kind: *kind,
                data: data.clone(),
                trace_id: trace.clone(),
                created_at: now,
            })
            .collect())
    }

    /// How many of the tenant's agents are active: those a tenant-wide event is for.
    pub async fn active_agents(&self, tenant: TenantId) -> Result<u64> {
        let (n,): (i64,) = on_pool!(self, p => {
            sqlx::query_as("SELECT COUNT(*) FROM agents WHERE tenant_id = $1 AND status = 'active'")
                .bind(*tenant.as_uuid())
                .fetch_one(p)
                .await
        })?;
        Ok(count(n))
    }

    /// Deletes up to `limit` expired log entries; returns how many went.
    pub async fn delete_expired_tenant_log(&self, now_ms: i64, limit: u32) -> Result<u64> {
        self.delete_aged("tenant_log", "tenant_id, n", "expires_at", now_ms, limit)
            .await
    }

    /// Up to `limit` entries of `tenant`'s log after `after` and up to `upto`, oldest first.
    pub async fn read_tenant_log(
        &self,
        tenant: TenantId,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> Result<Vec<LogEvent>> {
        let sql = format!(
            "SELECT n, event_id, type, payload, trace_id, created_at FROM tenant_log \
             WHERE tenant_id = $1 AND n > $2 AND n <= $3 ORDER BY n LIMIT {limit}"
        );
        let rows: Vec<LogRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .bind(after as i64)
                .bind(upto as i64)
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(log_event).collect()
    }

    /// Each agent's anchor in its tenant's log, for pushing log entries to live
    /// sessions without reading each inbox (one query per chunk).
    pub async fn anchors(&self, agents: &[AgentId]) -> Result<Vec<Anchor>> {
        let mut out = Vec::with_capacity(agents.len());
        for chunk in agents.chunks(CHUNK) {
            let sql = format!(
                "SELECT a.id, COALESCE(c.last_seq, 0), COALESCE(c.mark, 0) FROM agents a \
                 LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id IN ({})",
                dialect::placeholders(self.backend(), chunk.len())
            );
            let rows: Vec<(Uuid, i64, i64)> = on_pool!(self, p => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for agent in chunk {
                    q = q.bind(*agent.as_uuid());
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows.into_iter().map(|(a, last, mark)| Anchor {
                agent: AgentId::from_uuid(a),
                last: count(last),
                mark: count(mark),
            }));
        }
        Ok(out)
    }

    /// Up to `limit` events of `agent`'s stream after `after`, in seq order: its own
    /// inbox merged with its tenant's log. Nothing for an unknown agent.
    #[tracing::instrument(level = "debug", skip_all, fields(agent_id = %agent, after = after.get(), limit))]
    pub async fn read_inbox(
        &self,
        agent: AgentId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEvent>> {
        // One statement's snapshot: the log head and the cursor agree. Every own event
        // with a mark below an entry up to that head committed before the entry did
        // (the tenant row's lock), so the cursor already counts it.
        let head_sql = format!(
            "SELECT a.tenant_id, t.log_head, COALESCE(c.last_seq, 0), COALESCE(c.mark, 0), {HEAD_SEQ} \
             FROM agents a JOIN tenants t ON t.id = a.tenant_id \
             LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.id = $1"
        );
        let row: Option<(Uuid, i64, i64, i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(head_sql))
                .bind(*agent.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        let Some((tenant, head, last, mark, newest)) = row else {
            return Ok(Vec::new());
        };
        if after.get() >= count(newest) {
            return Ok(Vec::new());
        }
        let mut own = if after.get() < count(last) {
            self.read_own(agent, after, limit).await?
        } else {
            Vec::new()
        };
        up_to_head(&mut own, count(head));
        let cursor = Anchor {
            agent,
            last: count(last),
            mark: count(mark),
        };
        let from = log_start(&own, cursor, after.get());
        let log = if from <= count(head) {
            let tenant = TenantId::from_uuid(tenant);
            self.read_tenant_log(tenant, from - 1, count(head), limit)
                .await?
        } else {
            Vec::new()
        };
        Ok(merge(agent, own, log, cursor, limit))
    }

    async fn read_own(&self, agent: AgentId, after: Seq, limit: u32) -> Result<Vec<Own>> {
        // The limit is written into the SQL, not bound: SQLite plans around a bound
        // LIMIT's value, so rebinding it recompiled the statement on every call (8 % of
        // the node's CPU during a connect storm). Each page size is its own cached statement.
        let sql = format!(
            "SELECT seq, mark, prev_mark, event_id, type, payload, trace_id, created_at FROM inbox \
             WHERE agent_id = $1 AND seq > $2 ORDER BY seq LIMIT {limit}"
        );
        let rows: Vec<OwnRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*agent.as_uuid())
                .bind(i64::try_from(after.get()).unwrap_or(i64::MAX))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter()
            .map(|(seq, mark, prev, id, kind, data, trace, created_at)| {
                Ok(Own {
                    event: InboxEvent {
                        agent,
                        seq: Seq::new(count(seq)),
                        event_id: EventId::from_uuid(id),
                        kind: parse_kind(&kind)?,
                        data: data.into(),
                        trace_id: trace.map(Into::into),
                        created_at,
                    },
                    mark: count(mark),
                    prev_mark: count(prev),
                })
            })
            .collect()
    }
}

/// Drops own events appended after the log head was read (their mark is past it): log
/// entries between them and the head were not read, so the page stops before them.
/// Marks never decrease along an agent's seqs.
fn up_to_head(own: &mut Vec<Own>, head: u64) {
    let newer = own.iter().position(|o| o.mark > head).unwrap_or(own.len());
    own.truncate(newer);
}

/// The first log entry that can sit after `after` in the agent's stream: just past the
/// first own event's predecessor, and no earlier than seq `after + 1`; with no own
/// events left after `after`, the first entry past the cursor's own seq space.
fn log_start(own: &[Own], cursor: Anchor, after: u64) -> u64 {
    match own.first() {
        // Entry n before it has seq s - 1 - (m - n) > after ⇔ n > m + 1 + after - s.
        Some(first) => {
            let (s, m) = (first.event.seq.get(), first.mark);
            first.prev_mark.max((m + 1 + after).saturating_sub(s)) + 1
        }
        None => {
            cursor
                .mark
                .max((cursor.mark + after).saturating_sub(cursor.last))
                + 1
        }
    }
}

/// Interleaves own events and log entries by seq and keeps the first `limit`. A full
/// page of own events ends the page: log entries after its last one may sit after own
/// events not read.
fn merge(
    agent: AgentId,
    own: Vec<Own>,
    log: Vec<LogEvent>,
    cursor: Anchor,
    limit: u32,
) -> Vec<InboxEvent> {
    let own_full = own.len() >= limit as usize;
    let tail = own.last().map_or(cursor, |o| Anchor {
        agent,
        last: o.event.seq.get(),
        mark: o.mark,
    });
    let mut out: Vec<InboxEvent> = Vec::with_capacity(own.len() + log.len());
    let mut own = own.into_iter().peekable();
    for entry in log {
        while let Some(o) = own.next_if(|o| o.mark < entry.n) {
            out.push(o.event);
        }
        let seq = match own.peek() {
            Some(next) => next.event.seq.get() - 1 - (next.mark - entry.n),
            None if own_full => break,
            None => match tail.seq_of(entry.n) {
                Some(seq) => seq.get(),
                None => continue,
            },
        };
        out.push(entry.for_agent(agent, Seq::new(seq)));
    }
    out.extend(own.map(|o| o.event));
    out.truncate(limit as usize);
    out
}

#[cfg(test)]
mod tests;
