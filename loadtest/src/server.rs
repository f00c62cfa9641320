//! The system under test, whichever it is: a Nexus node or the Socket.IO
//! peer, started by the tool or reached at `--url`. Scenarios see only this.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Child;

use crate::node::{self, NodeEnv};
use crate::proc::{self, ProcSample, Tail};
use crate::{jwt, socketio};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Nexus,
    Socketio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nexus => "nexus",
            Kind::Socketio => "socketio",
        }
    }
}

/// How to reach (or start) the server.
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    pub url: Option<String>,
    pub jwt_secret: Option<String>,
    pub database_url: Option<String>,
    pub pid: Option<u32>,
}

/// Agents ready to connect: ids and signed tokens, all of one tenant.
pub struct Fixture {
    pub tenant_id: String,
    pub agent_ids: Vec<String>,
    pub tokens: Vec<String>,
    pub provision_s: f64,
}

pub struct Server {
    pub kind: Kind,
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// `ws://127.0.0.1:PORT`
    pub ws: String,
    pub pid: Option<u32>,
    jwt_secret: String,
    client: reqwest::Client,
    child: Option<(Child, Tail)>,
    node: Option<NodeEnv>,
    operator_key: Option<String>,
    /// Set by [`Server::route_via_slack`]: events go in as signed Slack webhooks.
    slack: Option<SlackRoute>,
    _dir: Option<TempDir>,
}

impl Server {
    pub async fn start(kind: Kind, opts: &ServerOpts) -> Result<Server> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(2048)
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut server = Server {
            kind,
            http: String::new(),
            ws: String::new(),
            pid: opts.pid,
            jwt_secret: String::new(),
            client,
            child: None,
            node: None,
            operator_key: None,
            slack: None,
            _dir: None,
        };
        if let Some(url) = &opts.url {
            let addr = loopback_addr(url)?;
            server.jwt_secret = opts
                .jwt_secret
                .clone()
                .context("--url needs --jwt-secret (or NEXUS_JWT_SECRET) to mint agent tokens")?;
            if kind == Kind::Nexus {
                let database_url = opts
                    .database_url
                    .clone()
                    .context("--url needs --database-url (or DATABASE_URL) to provision agents")?;
                server.node = Some(NodeEnv {
                    bin: node::locate_bin().await?,
                    database_url,
                    jwt_secret: server.jwt_secret.clone(),
                });
            }
            server.set_addr(&addr);
            return Ok(server);
        }
        server.jwt_secret = jwt::random_secret();
        let (child, addr, tail) = match kind {
            Kind::Nexus => {
                let dir = tempfile::tempdir()?;
                let env = NodeEnv {
                    bin: node::locate_bin().await?,
                    database_url: format!("sqlite://{}/nexus.db", dir.path().display()),
                    jwt_secret: server.jwt_secret.clone(),
                };
                let started = env.serve().await?;
                server.node = Some(env);
                server._dir = Some(dir);
                started
            }
            Kind::Socketio => socketio::start(&server.jwt_secret).await?,
        };
        server.pid = child.id();
        server.child = Some((child, tail));
        server.set_addr(&addr);
        server.wait_ready().await?;
        Ok(server)
    }

    fn set_addr(&mut self, addr: &str) {
        self.http = format!("http://{addr}");
        self.ws = format!("ws://{addr}");
    }

    async fn wait_ready(&self) -> Result<()> {
        let path = match self.kind {
            Kind::Nexus => "/ready",
            Kind::Socketio => "/healthz",
        };
        for _ in 0..300 {
            if let Ok(r) = self.client.get(format!("{}{path}", self.http)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} never answered {path} with 200", self.kind.name())
    }

    /// Creates `n` agents of one new tenant and signs a token for each.
    /// Socket.IO has no database: its agents are just ids in the tokens.
    pub async fn provision(&mut self, n: usize) -> Result<Fixture> {
        let (tenant_id, agents, took) = match &self.node {
            Some(env) => {
                let p = node::provision(env, n).await?;
                self.operator_key = Some(p.operator_key);
                (p.tenant_id, p.agents, p.took.as_secs_f64())
            }
            None => {
                let ids = (0..n)
                    .map(|_| (uuid::Uuid::now_v7().to_string(), "lt".to_owned()))
                    .collect();
                (uuid::Uuid::now_v7().to_string(), ids, 0.0)
            }
        };
        let tokens = agents
            .iter()
            .map(|(id, client)| jwt::mint(&self.jwt_secret, id, &tenant_id, client))
            .collect::<Result<Vec<_>>>()?;
        Ok(Fixture {
            tenant_id,
            agent_ids: agents.into_iter().map(|(id, _)| id).collect(),
            tokens,
            provision_s: took,
        })
    }

    /// RSS and CPU of the server process (after a full GC for Node, so its
    /// garbage does not count as connection cost). `None` without a pid.
    pub async fn sample(&self) -> Result<Option<ProcSample>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        if self.kind == Kind::Socketio {
            self.client
                .post(format!("{}/gc", self.http))
                .send()
                .await
                .context("POST /gc")?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        proc::sample(pid).map(Some)
    }

    /// A cheap handle that emits events (cloned into concurrent requests).
    pub fn emitter(&self) -> Emitter {
        Emitter {
            kind: self.kind,
            http: self.http.clone(),
            client: self.client.clone(),
            operator_key: self.operator_key.clone(),
            slack: self.slack.clone(),
        }
    }

    /// Registers a Slack source and gives each agent a Slack user (`U` + its id), so
    /// `emit_agent` can reach it through `POST /webhooks/slack/{source}` as a mention:
    /// the whole webhook path (signature, job, Slack processor, inbox) is measured.
    pub async fn route_via_slack(&mut self, fixture: &Fixture) -> Result<()> {
        use futures_util::StreamExt;
        let (Kind::Nexus, Some(env), Some(key)) = (self.kind, &self.node, &self.operator_key)
        else {
            bail!(
                "--via slack needs a Nexus node this tool provisions (no --url without --database-url)"
            );
        };
        let secret = format!("lt-signing-{}", uuid::Uuid::new_v4().simple());
        let team = format!(
            "TLT{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        let source = env
            .cli(&[
                "source",
                "add",
                "--tenant",
                &fixture.tenant_id,
                "--kind",
                "slack",
                "--team-id",
                &team,
                "--signing-secret",
                &secret,
            ])
            .await?;
        let path = source
            .first()
            .and_then(|s| s["url_path"].as_str())
            .context("source add printed no url_path")?
            .to_owned();
        let url = format!("{}/api/tenants/{}/identities", self.http, fixture.tenant_id);
        let posts = fixture.agent_ids.iter().map(|agent| {
            let req = self.client.post(&url).bearer_auth(key).json(&json!({
                "agent_id": agent, "provider": "slack", "external_user_id": slack_user(agent),
            }));
            async move {
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("identity for {agent}: {}", resp.status());
                }
                anyhow::Ok(())
            }
        });
        futures_util::stream::iter(posts)
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        self.slack = Some(SlackRoute {
            url: format!("{}{path}", self.http),
            team,
            secret,
        });
        Ok(())
    }

    /// The last lines the server logged (when the tool started it).
    pub fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|(_, t)| t.text())
            .unwrap_or_default()
    }

    /// Stops a server the tool started (SIGTERM); leaves `--url` ones alone.
    pub async fn stop(mut self) -> Result<()> {
        if let Some((mut child, _)) = self.child.take() {
            proc::terminate(&mut child).await?;
        }
        Ok(())
    }
}

/// Where `--via slack` posts, and how it signs.
#[derive(Clone)]
pub struct SlackRoute {
    url: String,
    team: String,
    secret: String,
}

/// The Slack user id the load test gives an agent.
fn slack_user(agent: &str) -> String {
    format!("U{}", agent.replace('-', "").to_uppercase())
}

/// Emits events through the server's HTTP API.
#[derive(Clone)]
pub struct Emitter {
    kind: Kind,
    http: String,
    client: reqwest::Client,
    operator_key: Option<String>,
    slack: Option<SlackRoute>,
}

impl Emitter {
    /// One event for one agent; `Ok(true)` when the server accepted it.
    pub async fn emit_agent(&self, agent: &str, data: Value) -> Result<bool> {
        if let Some(route) = &self.slack {
            return self.slack_mention(route, agent, &data).await;
        }
        let (url, body) = match self.kind {
            Kind::Nexus => (format!("{}/api/agents/{agent}/events", self.http), None),
            Kind::Socketio => (format!("{}/emit/agent/{agent}", self.http), Some(())),
        };
        let resp = self
            .request(&url)?
            .json(&json!({"type": "wake_up", "data": data}))
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        match (status.as_u16(), body) {
            (202, None) => Ok(true),
            (202, Some(())) => Ok(answer["delivered"] == Value::Bool(true)),
            _ => bail!("{url} answered {status}: {answer}"),
        }
    }

    /// One event for every agent of `tenant`; returns how many the server
    /// says it addressed.
    pub async fn emit_tenant(&self, tenant: &str, data: Value) -> Result<u64> {
        let url = match self.kind {
            Kind::Nexus => format!("{}/api/tenants/{tenant}/events", self.http),
            Kind::Socketio => format!("{}/emit/tenant/{tenant}", self.http),
        };
        let resp = self
            .request(&url)?
            .json(&json!({"type": "wake_up", "data": data}))
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status.as_u16() != 202 {
            bail!("{url} answered {status}: {answer}");
        }
        Ok(answer["agents"].as_u64().unwrap_or(0))
    }

    /// A signed `message` event mentioning the agent; its text carries `lt:{i}:{t_ns}`.
    async fn slack_mention(&self, route: &SlackRoute, agent: &str, data: &Value) -> Result<bool> {
        use hmac::{Hmac, Mac};
        let (i, t_ns) = (
            data["i"].as_u64().unwrap_or(0),
            data["t_ns"].as_u64().unwrap_or(0),
        );
        let body = json!({
            "type": "event_callback", "team_id": route.team, "event_id": format!("EvLT{i}"),
            "event": {"type": "message", "channel": "CLOADTEST", "user": "ULOADTESTER",
                      "text": format!("<@{}> lt:{i}:{t_ns}", slack_user(agent)),
                      "ts": format!("{}.{:06}", t_ns / 1_000_000_000, i % 1_000_000)},
        })
        .to_string();
        let ts = (t_ns / 1_000_000_000).to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(route.secret.as_bytes())?;
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        let resp = self
            .client
            .post(&route.url)
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        match (status.as_u16(), answer["status"].as_str()) {
            (200, Some("accepted")) => Ok(true),
            _ => bail!("{} answered {status}: {answer}", route.url),
        }
    }

    fn request(&self, url: &str) -> Result<reqwest::RequestBuilder> {
        let req = self.client.post(url);
        Ok(match (self.kind, &self.operator_key) {
            (Kind::Nexus, Some(key)) => req.bearer_auth(key),
            (Kind::Nexus, None) => bail!("no operator key: provision first"),
            (Kind::Socketio, _) => req,
        })
    }
}

/// `host:port` of a loopback URL; anything else is refused.
pub fn loopback_addr(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url:?}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--url must be a loopback address (127.0.0.1, localhost, [::1]); got {host:?}");
    }
    let port = parsed
        .port_or_known_default()
        .context("--url without a port")?;
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            loopback_addr("http://localhost:3000/").unwrap(),
            "localhost:3000"
        );
        assert!(loopback_addr("http://10.0.0.1:8080").is_err());
        assert!(loopback_addr("http://example.com").is_err());
    }
}
