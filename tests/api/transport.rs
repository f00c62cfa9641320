//! PostgreSQL over TLS: a node whose `DATABASE_URL` says `sslmode=require` works, and
//! the server sees every one of its connections encrypted.

use reqwest::StatusCode;

use crate::helpers::{DATABASE_VAR, Profile, TestApp, TestDb, service_url};
use crate::postgres_profile;

postgres_profile!(the_node_runs_on_postgres_over_tls);

async fn the_node_runs_on_postgres_over_tls() {
    let db = TestDb::new(Profile::Postgres).await;
    let name = format!("nexus-tls-{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}&sslmode=require&application_name={name}", db.url);
    let app = TestApp::spawn_on(TestDb::shared(&url), |_| {}).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(token.status(), StatusCode::OK);

    let admin = sqlx::PgPool::connect(&service_url(DATABASE_VAR))
        .await
        .expect("connect");
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(&name)
    .fetch_one(&admin)
    .await
    .expect("pg_stat_ssl");
    assert!(all > 0, "the node holds connections");
    assert_eq!(encrypted, all, "every connection of the node is TLS");
    admin.close().await;
    drop(app);
    drop(db);
}
