//! Redis pub/sub between nodes: each node subscribes to `nexus:node:{node_id}` and to
//! `nexus:nodes` (messages for all); messages are JSON [`NodeMsg`]s.

use std::sync::Arc;

use fred::prelude::*;
use futures_util::future::BoxFuture;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ALL_NODES, Broker, BrokerError, NodeMsg, NodeSink, channel};
use crate::redis::Redis;

pub struct RedisBroker {
    redis: Redis,
}

impl RedisBroker {
    /// Subscribes to this node's channel and hands its messages to `sink` until `stop`.
    /// After every reconnect it subscribes again and tells the sink, which reconciles.
    pub async fn start(
        redis: Redis,
        node_id: &str,
        sink: Arc<dyn NodeSink>,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        let subscriber = redis.subscriber.clone();
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let channels = [channel(node_id), ALL_NODES.to_owned()];
        subscriber.subscribe(channels.to_vec()).await?;
        let node_id = node_id.to_owned();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    m = messages.recv() => match m {
                        Ok(m) => match m.value.as_str().and_then(|s| serde_json::from_str(&s).ok()) {
                            Some(msg) => sink.receive(msg),
                            None => tracing::warn!(node_id, "unreadable node message ignored"),
                        },
                        // Missed messages: the reconcile finds what they announced.
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(node_id, missed = n, "node messages lagged; reconciling");
                            sink.resubscribed();
                        }
                        Err(RecvError::Closed) => return,
                    },
                    r = reconnects.recv() => match r {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            match subscriber.subscribe(channels.to_vec()).await {
                                Ok(()) => sink.resubscribed(),
                                // The next reconnect tries again.
                                Err(e) => tracing::warn!(node_id, error = %e, "resubscribe failed"),
                            }
                        }
                        Err(RecvError::Closed) => return,
                    },
                    _ = stop.cancelled() => return,
                }
            }
        });
        Ok(RedisBroker { redis })
    }
}

impl Broker for RedisBroker {
    fn publish<'a>(
        &'a self,
        node: &'a str,
        msg: &'a NodeMsg,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let body = serde_json::to_string(msg).unwrap_or_default();
            let _: i64 = self.redis.client.publish(channel(node), body).await?;
            Ok(())
        })
    }

    fn publish_all<'a>(&'a self, msg: &'a NodeMsg) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let body = serde_json::to_string(msg).unwrap_or_default();
            let _: i64 = self.redis.client.publish(ALL_NODES, body).await?;
            Ok(())
        })
    }
}
