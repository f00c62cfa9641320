//! Batch emit: many events for many agents in one inbox append, so a producer's batch
//! costs one group commit, not one per event.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use nexus_proto::{AgentId, EventId, TenantId};

use super::{EmitError, Emitted, Hub, NewEvent, inbox_template};
use crate::group_commit::SubmitError;
use crate::store::{NewInboxEvent, StoreError};

/// One event of a batch, for one agent of `tenant` (checked and admitted by the caller).
#[derive(Debug, Clone)]
pub struct BatchEvent {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub event: NewEvent,
}

/// How one event of a batch gets its answer.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Its idempotency key was stored by an earlier request.
    Known(Emitted),
    /// Its key repeats the one of this earlier event of the batch (same agent).
    Repeat(usize),
    /// This row of the append.
    Append(usize),
}

impl Hub {
    /// Appends `events` to their agents' inboxes in one append (one commit) and answers
    /// one [`Emitted`] per event, in their order; several events for one agent get
    /// ascending seqs in that order. Idempotency keys behave as in
    /// [`Hub::emit_to_agent`]: a key stored before answers its first event, and a key
    /// given twice in the batch (same agent) answers the first of the two. Nothing is
    /// answered before the commit; a storage error fails the whole batch.
    pub async fn emit_batch(&self, events: Vec<BatchEvent>) -> Result<Vec<Emitted>, EmitError> {
        let known = self.stored_keys(&events).await?;
        let mut ttls: HashMap<TenantId, i64> = HashMap::new();
        let mut first: HashMap<(AgentId, &str), usize> = HashMap::new();
        let mut plans = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            if let Some(key) = e.event.idempotency_key.as_deref() {
                match first.entry((e.agent, key)) {
                    Entry::Occupied(earlier) => {
                        plans.push(Plan::Repeat(*earlier.get()));
                        continue;
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
                if let Some((event_id, seq)) = known.get(&(e.agent, key.to_owned())) {
                    plans.push(Plan::Known(Emitted {
                        event_id: *event_id,
                        seq: *seq,
                    }));
                    continue;
                }
            }
            let ttl_ms = match ttls.entry(e.tenant) {
                Entry::Occupied(ttl) => *ttl.get(),
                Entry::Vacant(slot) => *slot.insert(self.ttl_ms(e.tenant).await?),
            };
            rows.push(NewInboxEvent {
                agent: e.agent,
                idempotency_key: e.event.idempotency_key.clone(),
                ..inbox_template(EventId::new_v7(), &e.event, ttl_ms)
            });
            plans.push(Plan::Append(rows.len() - 1));
        }
        drop(first);
        let ids: Vec<EventId> = rows.iter().map(|r| r.event_id).collect();
        let stored = if rows.is_empty() {
            Vec::new()
        } else {
            match self.inbox.append(rows).await {
                Ok(stored) => stored,
                // A key stored by a concurrent request after the lookup: the append
                // committed nothing, so each event goes again on its own, which
                // answers such a key with the winner's event.
                Err(SubmitError::Store(e)) if matches!(*e, StoreError::Conflict(_)) => {
                    return self.emit_each(events, &plans).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let appended: Vec<Emitted> = ids
            .into_iter()
            .zip(&stored)
            .map(|(event_id, e)| Emitted {
                event_id,
                seq: e.seq,
            })
            .collect();
        let mut out: Vec<Emitted> = Vec::with_capacity(plans.len());
        for plan in &plans {
            let emitted = match *plan {
                Plan::Known(hit) => hit,
                Plan::Repeat(earlier) => out[earlier],
                Plan::Append(row) => *appended
                    .get(row)
                    .ok_or_else(|| StoreError::Corrupt("an append answered fewer events".into()))?,
            };
            out.push(emitted);
        }
        Ok(out)
    }

    /// The events already stored under the batch's idempotency keys, one query per chunk.
    async fn stored_keys(
        &self,
        events: &[BatchEvent],
    ) -> Result<HashMap<(AgentId, String), (EventId, nexus_proto::Seq)>, StoreError> {
        let pairs: Vec<(AgentId, String)> = events
            .iter()
            .filter_map(|e| Some((e.agent, e.event.idempotency_key.clone()?)))
            .collect();
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.find_idempotent_many(&pairs).await
    }

    /// The batch one event at a time, in order (after a key conflict).
    async fn emit_each(
        &self,
        events: Vec<BatchEvent>,
        plans: &[Plan],
    ) -> Result<Vec<Emitted>, EmitError> {
        let mut out: Vec<Emitted> = Vec::with_capacity(events.len());
        for (e, plan) in events.into_iter().zip(plans) {
            let emitted = match *plan {
                Plan::Known(hit) => hit,
                Plan::Repeat(earlier) => out[earlier],
                Plan::Append(_) => self.emit_to_agent(e.tenant, e.agent, e.event).await?,
            };
            out.push(emitted);
        }
        Ok(out)
    }
}
