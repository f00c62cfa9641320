//! The system under test, whichever it is: a Nexus node or the Socket.IO
//! peer, started by the tool or reached at `--url`. Scenarios see only this.
//!
//! [`Server`] starts, provisions, samples and stops it; [`emitter`] sends it
//! events (through its API or, after [`routes`], as signed webhooks).

mod emitter;
mod routes;

use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;
use tokio::process::Child;

use crate::node::{self, NodeEnv};
use crate::peer::{self, PeerOpts};
use crate::pin::Pinning;
use crate::proc::{self, ProcSample, Tail};
use crate::target::Target;
use crate::webhooks::Route;
use crate::{jwt, net};

pub use emitter::Emitter;

/// How to reach (or start) the server.
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    pub url: Option<String>,
    pub jwt_secret: Option<String>,
    pub database_url: Option<String>,
    pub pid: Option<u32>,
    /// `--clickup-api-url` for a node the tool starts (`--via clickup`).
    pub clickup_api_url: Option<String>,
    /// Where a server the tool starts runs (and its provisioning CLI).
    pub pinning: Pinning,
}

/// Agents ready to connect: ids and signed tokens, all of one tenant.
pub struct Fixture {
    pub tenant_id: String,
    pub agent_ids: Vec<String>,
    pub tokens: Vec<String>,
    pub provision_s: f64,
}

pub struct Server {
    pub target: Target,
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
    pub async fn start(target: Target, opts: &ServerOpts) -> Result<Server> {
        let client = net::http_client()?;
        let mut server = Server {
            target,
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
            let addr = net::loopback_addr(url).context("--url")?;
            server.jwt_secret = opts
                .jwt_secret
                .clone()
                .context("--url needs --jwt-secret (or NEXUS_JWT_SECRET) to mint agent tokens")?;
            if target == Target::Nexus {
                let database_url = opts
                    .database_url
                    .clone()
                    .context("--url needs --database-url (or DATABASE_URL) to provision agents")?;
                server.node = Some(NodeEnv {
                    bin: node::locate_bin().await?,
                    database_url,
                    jwt_secret: server.jwt_secret.clone(),
                    secrets_key: None,
                    clickup_api_url: None,
                    node_cpus: None,
                    cli_cpus: opts.pinning.provisioning_cpus(),
                });
            }
            server.set_addr(&addr);
            return Ok(server);
        }
        server.jwt_secret = jwt::random_secret();
        let (child, addr, tail) = match target {
            Target::Nexus => {
                let dir = tempfile::tempdir()?;
                let env = NodeEnv {
                    bin: node::locate_bin().await?,
                    database_url: format!("sqlite://{}/nexus.db", dir.path().display()),
                    jwt_secret: server.jwt_secret.clone(),
                    secrets_key: None,
                    clickup_api_url: opts.clickup_api_url.clone(),
                    node_cpus: opts.pinning.node_cpus.clone(),
                    cli_cpus: opts.pinning.provisioning_cpus(),
                };
                let started = env.serve(&[]).await?;
                server.node = Some(env);
                server._dir = Some(dir);
                started
            }
            Target::Socketio => {
                let peer = PeerOpts {
                    jwt_secret: &server.jwt_secret,
                    redis_url: None,
                    cpus: opts.pinning.node_cpus.as_ref(),
                };
                peer::start(&peer).await?
            }
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
        let path = match self.target {
            Target::Nexus => "/ready",
            Target::Socketio => "/healthz",
        };
        net::wait_ok(&self.client, &format!("{}{path}", self.http)).await
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
        if self.target == Target::Socketio {
            self.client
                .post(format!("{}/gc", self.http))
                .send()
                .await
                .context("POST /gc")?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        proc::sample(pid).map(Some)
    }

    /// CPU seconds (user + system) of the server process, read without the
    /// full GC [`Server::sample`] asks Node for (its cost is not the load's).
    pub fn cpu_s(&self) -> Result<Option<f64>> {
        self.pid
            .map(|pid| proc::sample(pid).map(|s| s.cpu_s))
            .transpose()
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
