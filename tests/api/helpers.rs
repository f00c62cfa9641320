//! A real node on an ephemeral port, on a fresh database of either profile.

use std::net::SocketAddr;

use nexus::app::Application;
use nexus::config::{Config, ServeOpts};
use nexus::state::AppState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { sqlite, postgres }` tests calling `async fn NAME(Profile)`.
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
                super::$name($crate::helpers::Profile::Postgres).await
            }
        }
    )*};
}

/// A fresh database: a temp SQLite file, or a fresh schema in the test PostgreSQL.
pub struct TestDb {
    pub url: String,
    /// Held for its `Drop`: the SQLite file lives as long as the `TestDb`.
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// `None` (with a note on stderr) when PostgreSQL is asked for but not configured.
    /// Configured but unreachable is a failure, not a skip; so is unconfigured in CI
    /// (`CI` set), where a skip would pass a PostgreSQL test without running it.
    pub async fn new(profile: Profile) -> Option<TestDb> {
        match profile {
            Profile::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
                Some(TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Profile::Postgres => {
                let Ok(admin) = std::env::var("NEXUS_TEST_DATABASE_URL") else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI is set but NEXUS_TEST_DATABASE_URL is not: PostgreSQL tests must run in CI"
                    );
                    eprintln!(
                        "skipped: NEXUS_TEST_DATABASE_URL is unset (set it to run against PostgreSQL)"
                    );
                    return None;
                };
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
                Some(TestDb {
                    url,
                    _dir: None,
                    pg: Some((admin, schema)),
                })
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
    pub async fn spawn(profile: Profile) -> Option<TestApp> {
        Self::spawn_with(profile, |_| {}).await
    }

    pub async fn spawn_with(profile: Profile, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let db = TestDb::new(profile).await?;
        Some(Self::spawn_on(db, tweak).await)
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

    /// Stops the node gracefully and hands back its database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        std::mem::replace(&mut self.db, TestDb::shared(""))
    }

    pub async fn tenant(&self, name: &str) -> nexus::store::Tenant {
        nexus::admin::create_tenant(&self.state.store, name)
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
        let mut created = nexus::admin::create_agents(&self.state.store, tenant, vec![spec])
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
        nexus::admin::create_operator_key(&self.state.store, "test", scopes, tenant)
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
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
