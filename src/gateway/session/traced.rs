//! Debug logs that follow a traced event (one a webhook or an API call with a trace id
//! produced) onto the socket and to the agent's ack, so one trace id shows the whole
//! path. Nothing is kept unless debug logging is on.

use std::sync::Arc;

use nexus_proto::{AgentId, Seq};

/// Sent traced events not yet acked, oldest first; bounded so a silent agent costs
/// little.
#[derive(Default)]
pub(super) struct Traced(Vec<(Seq, Arc<str>)>);

const KEEP: usize = 64;

impl Traced {
    pub(super) fn sent(&mut self, agent: AgentId, seq: Seq, trace_id: Option<&Arc<str>>) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let trace = trace_id.map(|t| &**t);
        tracing::debug!(agent_id = %agent, seq = seq.get(), trace_id = trace, "event sent");
        if let Some(trace_id) = trace_id {
            if self.0.len() == KEEP {
                self.0.remove(0);
            }
            self.0.push((seq, trace_id.clone()));
        }
    }

    pub(super) fn acked(&mut self, agent: AgentId, seq: Seq) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let done = self.0.iter().take_while(|(s, _)| *s <= seq).count();
        for (sent, trace_id) in self.0.drain(..done) {
            tracing::debug!(agent_id = %agent, seq = sent.get(), acked = seq.get(), trace_id = &*trace_id, "event acked");
        }
    }
}
