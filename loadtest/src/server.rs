//! The system under test, whichever it is: a Nexus node or the Socket.IO
//! peer, started by the tool or reached at `--url`. Scenarios see only this.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Child;

use crate::fake_clickup::{self, FakeClickUp};
use crate::node::{self, NodeEnv};
use crate::proc::{self, ProcSample, Tail};
use crate::webhooks::{ClickUpRoute, Route, SlackRoute, clickup_user, slack_user};
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
    /// `--clickup-api-url` for a node the tool starts (`--via clickup`).
    pub clickup_api_url: Option<String>,
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
    /// Set by `route_via_*`: events go in as signed webhooks instead.
    route: Option<Route>,
    _dir: Option<TempDir>,
}

impl Server {
    pub async fn start(kind: Kind, opts: &ServerOpts) -> Result<Server> {
        let client = http_client()?;
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
            route: None,
            _dir: None,
        };
        if let Some(url) = &opts.url {
            let addr = loopback_addr(url).context("--url")?;
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
                    clickup_api_url: None,
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
                    clickup_api_url: opts.clickup_api_url.clone(),
                };
                let started = env.serve(&[]).await?;
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
        wait_ok(&self.client, &format!("{}{path}", self.http)).await
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
            route: self.route.clone(),
        }
    }

    /// Registers a Slack source and gives each agent a Slack user (`U` + its id), so
    /// `emit_agent` can reach it through `POST /webhooks/slack/{source}` as a mention:
    /// the whole webhook path (signature, job, Slack processor, inbox) is measured.
    pub async fn route_via_slack(&mut self, fixture: &Fixture) -> Result<()> {
        let secret = format!("lt-signing-{}", uuid::Uuid::new_v4().simple());
        let team = format!(
            "TLT{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        let source_args = [
            "--kind",
            "slack",
            "--team-id",
            &team,
            "--signing-secret",
            &secret,
        ];
        let url = self.add_source(fixture, &source_args).await?;
        self.add_identities(fixture, "slack", slack_user).await?;
        self.route = Some(Route::Slack(SlackRoute { url, team, secret }));
        Ok(())
    }

    /// Registers a ClickUp source reading tasks from `api`, maps its list, and gives
    /// each agent a ClickUp user: `emit_agent` then posts a signed `taskCreated` for a
    /// new task assigned to the agent, and Nexus reads the task, maps it and assigns
    /// it (`task_assigned`) — the whole ClickUp path.
    pub async fn route_via_clickup(&mut self, fixture: &Fixture, api: &FakeClickUp) -> Result<()> {
        let secret = format!("lt-webhook-{}", uuid::Uuid::new_v4().simple());
        let webhook_id = uuid::Uuid::new_v4().to_string();
        let source_args = [
            "--kind",
            "clickup",
            "--webhook-id",
            &webhook_id,
            "--secret",
            &secret,
            "--api-token",
            &api.token,
        ];
        let url = self.add_source(fixture, &source_args).await?;
        let env = self.node.as_ref().context("no node")?;
        env.cli(&[
            "mapping",
            "add",
            "--tenant",
            &fixture.tenant_id,
            "--clickup-list",
            fake_clickup::LIST,
            "--slack-channel",
            "CLOADTEST",
            "--no-open-threads",
        ])
        .await?;
        self.add_identities(fixture, "clickup", |agent| clickup_user(agent).to_string())
            .await?;
        self.route = Some(Route::Clickup(ClickUpRoute {
            url,
            webhook_id,
            secret,
        }));
        Ok(())
    }

    /// `nexus source add --tenant … ARGS`; returns the source's webhook URL.
    async fn add_source(&self, fixture: &Fixture, args: &[&str]) -> Result<String> {
        let (Kind::Nexus, Some(env)) = (self.kind, &self.node) else {
            bail!(
                "webhook routes need a Nexus node this tool provisions (no --url without --database-url)"
            );
        };
        let mut cli = vec!["source", "add", "--tenant", &fixture.tenant_id];
        cli.extend_from_slice(args);
        let source = env.cli(&cli).await?;
        let path = source
            .first()
            .and_then(|s| s["url_path"].as_str())
            .context("source add printed no url_path")?;
        Ok(format!("{}{path}", self.http))
    }

    /// Gives every agent a `provider` user, through the REST API.
    async fn add_identities(
        &self,
        fixture: &Fixture,
        provider: &str,
        user: impl Fn(&str) -> String,
    ) -> Result<()> {
        use futures_util::StreamExt;
        let key = self
            .operator_key
            .as_ref()
            .context("no operator key: provision first")?;
        let url = format!("{}/api/tenants/{}/identities", self.http, fixture.tenant_id);
        let posts = fixture.agent_ids.iter().map(|agent| {
            let req = self.client.post(&url).bearer_auth(key).json(&json!({
                "agent_id": agent, "provider": provider, "external_user_id": user(agent),
            }));
            async move {
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("{provider} identity for {agent}: {}", resp.status());
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

/// The HTTP client of every request the tool makes.
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Polls `url` (30 s at most) until it answers 2xx.
pub async fn wait_ok(client: &reqwest::Client, url: &str) -> Result<()> {
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} never answered 200")
}

/// Emits events through the server's HTTP API.
#[derive(Clone)]
pub struct Emitter {
    kind: Kind,
    http: String,
    client: reqwest::Client,
    operator_key: Option<String>,
    route: Option<Route>,
}

impl Emitter {
    /// Emits through the API of the Nexus node at `http` (a cluster node).
    pub fn nexus(http: &str, client: reqwest::Client, operator_key: &str) -> Emitter {
        Emitter {
            kind: Kind::Nexus,
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
    let parsed = ensure_loopback(url)?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("{url:?} has no port"))?;
    Ok(format!("{host}:{port}"))
}

/// Refuses any URL (HTTP, PostgreSQL, Redis) whose host is not loopback: the
/// tool loads only this machine.
pub fn ensure_loopback(url: &str) -> Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("the tool only loads loopback addresses (127.0.0.1, localhost, [::1]); got {host:?}");
    }
    Ok(parsed)
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
        assert!(ensure_loopback("postgres://postgres@127.0.0.1:5432/test").is_ok());
        assert!(ensure_loopback("redis://db.example.com:6379").is_err());
    }
}
