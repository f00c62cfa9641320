//! A real node on an ephemeral port, on a fresh database of either profile.

use std::net::SocketAddr;

use nexus::app::Application;
use nexus::config::{Config, SecretsKeyOpts, ServeOpts};
use nexus::state::AppState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { sqlite, postgres }` tests calling `async fn NAME(Profile)`.
/// The `postgres` test skips (or, in CI, fails) when PostgreSQL is not configured, so
/// the test itself gets its fixtures without a skip of its own.
#[macro_export]
macro_rules! both_profiles {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Profile::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_configured() {
                    super::$name($crate::helpers::Profile::Postgres).await
                }
            }
        }
    )*};
}

/// Generates `mod NAME { postgres }` tests calling `async fn NAME()`, for tests only
/// PostgreSQL can run; skipped (or, in CI, failed) as `both_profiles!`'s `postgres`.
#[macro_export]
macro_rules! postgres_profile {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_configured() {
                    super::$name().await
                }
            }
        }
    )*};
}

/// Generates `mod NAME { cluster }` tests calling `async fn NAME()`, for the cluster
/// profile: skipped (or, in CI, failed) unless both Redis and PostgreSQL are configured.
#[macro_export]
macro_rules! cluster_profile {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                if $crate::helpers::redis_configured() && $crate::helpers::postgres_configured() {
                    super::$name().await
                }
            }
        }
    )*};
}

pub const DATABASE_VAR: &str = "NEXUS_TEST_DATABASE_URL";
const REDIS_VAR: &str = "NEXUS_TEST_REDIS_URL";

/// Whether a test needing the service `var` points at runs. Unset, it is skipped with a
/// note on stderr, except in CI (`CI` set), where it fails: a skip there would pass a
/// test that never ran.
fn configured(var: &str, what: &str) -> bool {
    if std::env::var(var).is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {var} is not: {what} tests must run in CI"
    );
    eprintln!("skipped: {var} is unset (set it to run the {what} tests)");
    false
}

pub fn postgres_configured() -> bool {
    configured(DATABASE_VAR, "PostgreSQL")
}

pub fn redis_configured() -> bool {
    configured(REDIS_VAR, "cluster")
}

/// The URL in `var`; only tests under the macros above, which check it first, ask.
pub fn service_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is unset: a test needing it runs under both_profiles!, \
             postgres_profile! or cluster_profile!, which skip it"
        )
    })
}

/// `NEXUS_TEST_REDIS_URL`, for cluster tests.
pub fn redis_url() -> String {
    service_url(REDIS_VAR)
}

/// A fresh database: a temp SQLite file, or a fresh schema in the test PostgreSQL.
pub struct TestDb {
    pub url: String,
    /// Held for its `Drop`: the SQLite file lives as long as the `TestDb`.
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database of `profile`. PostgreSQL must be configured (the test macros
    /// check) and reachable: anything else is a failure.
    pub async fn new(profile: Profile) -> TestDb {
        match profile {
            Profile::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Profile::Postgres => {
                let admin = service_url(DATABASE_VAR);
                let schema = format!("nx_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("NEXUS_TEST_DATABASE_URL is set but PostgreSQL is unreachable");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{sep}options[search_path]={schema}");
                TestDb {
                    url,
                    _dir: None,
                    pg: Some((admin, schema)),
                }
            }
        }
    }

    /// Another handle on a database some other `TestDb` owns, for a second node on it:
    /// dropping this one removes nothing.
    pub fn shared(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            _dir: None,
            pg: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, schema)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let pool = sqlx::PgPool::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await
                .ok()?;
                pool.close().await;
                Some(())
            })
        })
        .join();
    }
}

/// The key sealing secrets in the test PostgreSQL (which has no file to keep one
/// beside); a SQLite test database keeps its own key file beside it, as by default.
pub const TEST_SECRETS_KEY: &str = "c2VhbGVkLXNlY3JldHMtdGVzdC1rZXktMDEyMzQ1Njc=";

/// The `NEXUS_SECRETS_KEY` a node or command on `url` is given in tests.
pub fn secrets_key(url: &str) -> Option<&'static str> {
    url.starts_with("postgres").then_some(TEST_SECRETS_KEY)
}

pub fn serve_opts() -> ServeOpts {
    let mut opts = ServeOpts::defaults();
    opts.listen = "127.0.0.1:0".parse().expect("addr");
    opts.shutdown_grace_s = 5;
    opts
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    pub db: TestDb,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(profile: Profile) -> TestApp {
        Self::spawn_with(profile, |_| {}).await
    }

    pub async fn spawn_with(profile: Profile, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(profile).await;
        Self::spawn_on(db, tweak).await
    }

    pub async fn spawn_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_full(db, tweak, nexus::app::Extras::default()).await
    }

    pub async fn spawn_full(
        db: TestDb,
        tweak: impl FnOnce(&mut Config),
        extras: nexus::app::Extras,
    ) -> TestApp {
        let mut config = Config {
            database_url: db.url.clone(),
            serve: serve_opts(),
            jwt_secret: Some("integration-test-secret-0123456789abcdef".into()),
            secrets_key: SecretsKeyOpts {
                key: secrets_key(&db.url).map(str::to_owned),
                file: None,
            },
            tiers: Default::default(),
            prices: Default::default(),
        };
        tweak(&mut config);
        let app = Application::build_with(config, extras)
            .await
            .expect("build app");
        let addr = app.local_addr();
        let state = app.state().clone();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(async move {
            app.run_until_stopped().await.expect("server");
        });
        TestApp {
            addr,
            state,
            http: reqwest::Client::new(),
            db,
            shutdown,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST /auth/token` with these client credentials (see [`request_token`]).
    pub async fn token_response(&self, client_id: &str, secret: &str) -> reqwest::Response {
        request_token(&self.http, &self.addr.to_string(), client_id, secret).await
    }

    /// Stops the node gracefully and hands back its database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        std::mem::replace(&mut self.db, TestDb::shared(""))
    }

    pub async fn tenant(&self, name: &str) -> nexus::store::Tenant {
        nexus::admin::create_tenant(
            &self.state.store,
            &self.state.config.tiers,
            &nexus::admin::Actor::Cli,
            name,
        )
        .await
        .expect("tenant")
    }

    pub async fn agent(
        &self,
        tenant: nexus_proto::TenantId,
        name: &str,
    ) -> nexus::admin::AgentWithSecret {
        let spec = nexus::admin::AgentSpec {
            name: name.into(),
            clickup_user: None,
            slack_user: None,
        };
        let mut created = nexus::admin::create_agents(
            &self.state.store,
            &self.state.config.tiers,
            &nexus::admin::Actor::Cli,
            tenant,
            vec![spec],
        )
        .await
        .expect("agent");
        created.remove(0)
    }

    pub async fn operator_key(
        &self,
        scopes: &str,
        tenant: Option<nexus_proto::TenantId>,
    ) -> String {
        let scopes = scopes.parse().expect("scopes");
        nexus::admin::create_operator_key(
            &self.state.store,
            &nexus::admin::Actor::Cli,
            "test",
            scopes,
            tenant,
        )
        .await
        .expect("key")
        .secret
    }

    /// The JSON body of `GET path` with this operator key.
    pub async fn get_json(&self, path: &str, key: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// `POST path` with this operator key and a JSON body: the status and the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or_default())
    }

    /// `GET /api/queue/stats` with a fresh read key.
    pub async fn queue_stats(&self) -> serde_json::Value {
        let key = self.operator_key("read", None).await;
        self.get_json("/api/queue/stats", &key).await
    }

    /// The agent's inbox cursor as `GET /api/agents/{id}/inbox` reports it to this
    /// operator key.
    pub async fn cursor(&self, agent: nexus_proto::AgentId, key: &str) -> Cursor {
        let v = self
            .get_json(&format!("/api/agents/{agent}/inbox?limit=1"), key)
            .await;
        Cursor {
            last_seq: v["last_seq"].as_u64().unwrap_or_else(|| panic!("{v}")),
            acked_seq: v["acked_seq"].as_u64().unwrap_or_else(|| panic!("{v}")),
        }
    }
}

/// An agent's inbox: the last seq appended, the last its agent acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub last_seq: u64,
    pub acked_seq: u64,
}

/// `POST /auth/token` to the node at `addr` (`host:port`): a client-credentials grant
/// with the credentials in a Basic header, as a standard OAuth2 client sends it. The
/// answer, success or not, is the caller's to check.
pub async fn request_token(
    http: &reqwest::Client,
    addr: &str,
    client_id: &str,
    secret: &str,
) -> reqwest::Response {
    http.post(format!("http://{addr}/auth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
