//! Messages between nodes: "agent X has committed inbox entries up to seq N", "tenant T's
//! log reached entry N" (to every node at once) and "close session S of agent X". A
//! node's sessions live on that node only, so the committing node (or the one an agent
//! reconnected to) tells the holder.
//!
//! [`Broker`] is the seam between [`LocalBroker`] (embedded profile: one node, so a
//! message to this node is handed straight to it) and [`RedisBroker`] (cluster: Redis
//! pub/sub on `nexus:node:{node_id}`, and `nexus:nodes` for all). Pub/sub keeps nothing: a message sent while a
//! node is cut off is lost, so receivers reconcile after every (re)subscribe
//! ([`NodeSink::resubscribed`]) and periodically.

mod redis;

pub use redis::RedisBroker;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use nexus_proto::{AgentId, Seq, SessionId, TenantId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeMsg {
    /// These agents have inbox entries committed up to these seqs: push what is missing.
    Committed(Vec<(AgentId, Seq)>),
    /// The tenant's log has entries up to `head`: push them to its agents here. One
    /// message per node however many agents the tenant has.
    Logged { tenant: TenantId, head: u64 },
    /// Close this session of the agent with `code` (4010 superseded, 4003 disabled).
    Close {
        agent: AgentId,
        session: SessionId,
        code: u16,
    },
}

/// Where a node's messages go: its session registry.
pub trait NodeSink: Send + Sync + 'static {
    fn receive(&self, msg: NodeMsg);
    /// The subscription was (re)established: messages may have been missed before it.
    fn resubscribed(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
}

pub trait Broker: Send + Sync + 'static {
    /// Sends `msg` to `node`. At most once: a node that is not listening misses it.
    fn publish<'a>(
        &'a self,
        node: &'a str,
        msg: &'a NodeMsg,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Sends `msg` to every node, this one included. At most once, as [`Broker::publish`].
    fn publish_all<'a>(&'a self, msg: &'a NodeMsg) -> BoxFuture<'a, Result<(), BrokerError>>;
}

/// One node: messages for it are handed to its sink at once; other nodes do not exist.
pub struct LocalBroker {
    node_id: String,
    sink: Arc<dyn NodeSink>,
}

impl LocalBroker {
    pub fn new(node_id: String, sink: Arc<dyn NodeSink>) -> LocalBroker {
        LocalBroker { node_id, sink }
    }
}

impl Broker for LocalBroker {
    fn publish<'a>(
        &'a self,
        node: &'a str,
        msg: &'a NodeMsg,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        if node == self.node_id {
            self.sink.receive(msg.clone());
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn publish_all<'a>(&'a self, msg: &'a NodeMsg) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.sink.receive(msg.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The pub/sub channel every node listens to.
pub const ALL_NODES: &str = "nexus:nodes";

/// The pub/sub channel of `node`.
pub fn channel(node: &str) -> String {
    format!("nexus:node:{node}")
}
