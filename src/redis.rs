//! The cluster profile's Redis connections (through `fred`): one client for commands
//! and scripts, and one for this node's pub/sub channel. Both reconnect by themselves,
//! forever, with backoff; every command waits at most [`COMMAND_TIMEOUT`], so a sick
//! Redis slows a connect or a status update by that much at worst, never hangs it.

use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::error::Error;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::Builder;
use fred::types::config::{Config, ReconnectPolicy};

use crate::telemetry::catalog;

pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Redis {
    pub client: Client,
    pub subscriber: SubscriberClient,
}

impl Redis {
    /// Connects both clients; fails when Redis cannot be reached now (a node should
    /// not start half-configured). Later outages are survived.
    pub async fn connect(url: &str, node_id: &str) -> Result<Redis, Error> {
        let config = Config::from_url(url)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                // Visible in `CLIENT LIST` as this client's id (`fred-…`).
                c.auto_client_setname = true;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                // Node messages queue here between the socket and the broker task.
                p.broadcast_channel_capacity = 4096;
            })
            // 0 attempts = no limit: 50 ms doubling to 2 s between attempts.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        watch(&client, node_id);
        watch(&subscriber, node_id);
        client.init().await?;
        subscriber.init().await?;
        Ok(Redis { client, subscriber })
    }

    /// The names the two connections give themselves (`CLIENT SETNAME`), for tests
    /// that cut them with `CLIENT KILL`.
    pub fn client_names(&self) -> [String; 2] {
        [
            self.client.id().to_string(),
            self.subscriber.id().to_string(),
        ]
    }

    pub async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }
}

/// Counts connection errors and reconnects for `/metrics`, and logs them.
fn watch(client: &impl EventInterface, node_id: &str) {
    let (mut errors, mut reconnects) = (client.error_rx(), client.reconnect_rx());
    let node_id = node_id.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                e = errors.recv() => match e {
                    Ok((error, _)) => {
                        metrics::counter!(catalog::REDIS_ERRORS).increment(1);
                        tracing::warn!(node_id, error = %error, "redis connection error");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                r = reconnects.recv() => match r {
                    Ok(_) => {
                        metrics::counter!(catalog::REDIS_RECONNECTS).increment(1);
                        tracing::info!(node_id, "redis reconnected");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
            }
        }
    });
}
