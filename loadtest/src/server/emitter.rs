//! Events into the server: through its emit API, or as signed webhooks once
//! a route is set ([`Server::route_via_slack`], [`Server::route_via_clickup`]).

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::Server;
use crate::target::Target;
use crate::webhooks::Route;

impl Server {
    /// A cheap handle that emits events (cloned into concurrent requests).
    pub fn emitter(&self) -> Emitter {
        Emitter {
            target: self.target,
            http: self.http.clone(),
            client: self.client.clone(),
            operator_key: self.operator_key.clone(),
            route: self.route.clone(),
        }
    }
}

/// Emits events through the server's HTTP API.
#[derive(Clone)]
pub struct Emitter {
    target: Target,
    http: String,
    client: reqwest::Client,
    operator_key: Option<String>,
    route: Option<Route>,
}

impl Emitter {
    /// Emits through the API of the Nexus node at `http` (a cluster node).
    pub fn nexus(http: &str, client: reqwest::Client, operator_key: &str) -> Emitter {
        Emitter {
            target: Target::Nexus,
            http: http.to_owned(),
            client,
            operator_key: Some(operator_key.to_owned()),
            route: None,
        }
    }

    /// One event for one agent; `Ok(true)` when the server accepted it.
    pub async fn emit_agent(&self, agent: &str, data: Value) -> Result<bool> {
        if let Some(route) = &self.route {
            return route.post(&self.client, agent, &data).await;
        }
        let url = match self.target {
            Target::Nexus => format!("{}/api/agents/{agent}/events", self.http),
            Target::Socketio => format!("{}/emit/agent/{agent}", self.http),
        };
        let (status, answer) = self.post_wake_up(&url, data).await?;
        // The baseline also answers 202 for an agent it does not hold.
        match (status.as_u16(), self.target) {
            (202, Target::Nexus) => Ok(true),
            (202, Target::Socketio) => Ok(answer["delivered"] == Value::Bool(true)),
            _ => bail!("{url} answered {status}: {answer}"),
        }
    }

    /// One event for every agent of `tenant`; returns how many the server
    /// says it addressed.
    pub async fn emit_tenant(&self, tenant: &str, data: Value) -> Result<u64> {
        let url = match self.target {
            Target::Nexus => format!("{}/api/tenants/{tenant}/events", self.http),
            Target::Socketio => format!("{}/emit/tenant/{tenant}", self.http),
        };
        let (status, answer) = self.post_wake_up(&url, data).await?;
        if status.as_u16() != 202 {
            bail!("{url} answered {status}: {answer}");
        }
        Ok(answer["agents"].as_u64().unwrap_or(0))
    }

    /// Posts a `wake_up` with `data`; the status and the JSON answer (null if none).
    async fn post_wake_up(&self, url: &str, data: Value) -> Result<(reqwest::StatusCode, Value)> {
        let resp = self
            .request(url)?
            .json(&json!({"type": "wake_up", "data": data}))
            .send()
            .await?;
        let status = resp.status();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    fn request(&self, url: &str) -> Result<reqwest::RequestBuilder> {
        let req = self.client.post(url);
        Ok(match (self.target, &self.operator_key) {
            (Target::Nexus, Some(key)) => req.bearer_auth(key),
            (Target::Nexus, None) => bail!("no operator key: provision first"),
            (Target::Socketio, _) => req,
        })
    }
}
