//! `POST /api/sessions` and friends: every validation rule with its status, 409 on a
//! repeated id (nothing changed), gzip bodies, parts assembled in order and streamed
//! back, and who may see what.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    a_session_uploaded_whole_is_stored_and_read_back,
    every_bad_field_is_named_with_its_status,
    a_repeated_session_id_is_409_and_changes_nothing,
    a_long_session_is_uploaded_in_parts_and_streamed_back_in_order,
    callers_see_only_their_own_sessions,
    sessions_past_retention_go_with_their_transcripts_and_usage,
);

fn session(id: &str, transcript: &str) -> Value {
    json!({
        "session_id": id,
        "source": "claude-code",
        "started_at": "2026-11-30T09:00:00Z",
        "ended_at": "2026-11-30T09:42:10.500Z",
        "usage": [
            {"model": "claude-sonnet-4-5", "input_tokens": 1200, "output_tokens": 340,
             "cache_read_tokens": 5000, "cache_write_tokens": 800},
            {"model": "claude-haiku-4-5", "input_tokens": 90, "output_tokens": 12}
        ],
        "cost_usd": 0.0421,
        "metadata": {"cwd": "/srv/app", "task": "CU-42"},
        "transcript": transcript,
    })
}

/// `method path` with `token` and a raw body (`gzip`: compressed, with its header).
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
    gzip: bool,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        let body = if gzip {
            req = req.header("content-encoding", "gzip");
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&body).expect("gzip");
            gz.finish().expect("gzip")
        } else {
            body
        };
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    let bytes = body.to_string().into_bytes();
    send(
        app,
        reqwest::Method::POST,
        "/api/sessions",
        token,
        Some(bytes),
        false,
    )
    .await
}

async fn post_gzip(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    let bytes = body.to_string().into_bytes();
    let post = reqwest::Method::POST;
    send(app, post, "/api/sessions", token, Some(bytes), true).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    send(app, reqwest::Method::GET, path, token, None, false).await
}

async fn transcript_of(app: &TestApp, token: &str, id: &str) -> (StatusCode, String) {
    let resp = app
        .http
        .get(app.url(&format!("/api/sessions/{id}/transcript")))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    (resp.status(), resp.text().await.expect("text"))
}

/// A tenant with an agent: the agent's token and an admin key.
async fn setup(app: &TestApp) -> (nexus::admin::AgentWithSecret, String, String) {
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "alice").await;
    let token = app.token_for(a.agent.id, t.id);
    let key = app.operator_key("admin", None).await;
    (a, token, key)
}

async fn a_session_uploaded_whole_is_stored_and_read_back(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (a, token, key) = setup(&app).await;
    let id = uuid::Uuid::new_v4().to_string();
    let text = "{\"type\":\"user\",\"text\":\"héllo\"}\n".repeat(1000);
    let (status, stored) = post(&app, &token, &session(&id, &text)).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["status"], "complete");
    assert_eq!(stored["agent_id"], a.agent.id.to_string());
    assert_eq!(stored["transcript_bytes"], text.len());
    assert_eq!(stored["started_at"], "2026-11-30T09:00:00.000Z");
    assert_eq!(stored["ended_at"], "2026-11-30T09:42:10.500Z");
    assert_eq!(stored["usage"][0]["model"], "claude-haiku-4-5");
    assert_eq!(stored["usage"][0]["cache_read_tokens"], 0);
    assert_eq!(stored["usage"][1]["cache_read_tokens"], 5000);
    assert_eq!(stored["metadata"]["task"], "CU-42");
    let (status, shown) = get(&app, &format!("/api/sessions/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, stored);
    assert_eq!(
        transcript_of(&app, &key, &id).await,
        (StatusCode::OK, text.clone())
    );
    let plain = app
        .http
        .get(app.url(&format!("/api/sessions/{id}")))
        .bearer_auth(&key)
        .header("accept", "text/plain")
        .send()
        .await
        .expect("send");
    let streamed = plain.text().await.expect("text");
    assert!(
        streamed == text,
        "Accept: text/plain streams the transcript too"
    );

    // A gzip body is decoded first; the operator names the agent.
    let id2 = uuid::Uuid::new_v4().to_string();
    let mut body = session(&id2, "short");
    body["agent_id"] = json!(a.agent.id);
    let (status, stored) = post_gzip(&app, &key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(transcript_of(&app, &token, &id2).await.1, "short");
    let (_, listed) = get(&app, "/api/sessions?limit=1", &key).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    let cursor = listed["next_cursor"].as_str().expect("a second page");
    let next = format!("/api/sessions?limit=1&cursor={cursor}");
    let (_, rest) = get(&app, &next, &key).await;
    assert_eq!(rest["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_cursor"], Value::Null);
}

/// The fields a 400 names.
fn fields(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["error"]["details"]["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

async fn every_bad_field_is_named_with_its_status(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (_, token, key) = setup(&app).await;
    let (status, refused) = post(&app, &token, &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let required = [
        "ended_at",
        "session_id",
        "source",
        "started_at",
        "transcript",
        "usage",
    ];
    assert_eq!(fields(&refused), required);
    let malformed = json!({
        "session_id": "not-a-uuid", "source": "Claude Code", "started_at": "yesterday",
        "ended_at": 5, "usage": [{"model": "m", "input_tokens": -1, "output_tokens": 1}],
        "cost_usd": -0.5, "metadata": ["x"], "transcript": 7,
    });
    let (status, refused) = post(&app, &token, &malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let all = [
        "cost_usd",
        "ended_at",
        "metadata",
        "session_id",
        "source",
        "started_at",
        "transcript",
        "usage",
    ];
    assert_eq!(fields(&refused), all);
    let id = uuid::Uuid::new_v4().to_string();
    let mut backwards = session(&id, "t");
    backwards["ended_at"] = json!("2026-11-30T08:00:00Z");
    assert_eq!(
        fields(&post(&app, &token, &backwards).await.1),
        ["ended_at"]
    );
    let mut twice = session(&id, "t");
    twice["usage"] = json!([{"model": "m", "input_tokens": 1, "output_tokens": 1}, {"model": "m", "input_tokens": 1, "output_tokens": 1}]);
    assert_eq!(fields(&post(&app, &token, &twice).await.1), ["usage"]);
    let mut both = session(&id, "t");
    both["parts"] = json!(2);
    assert_eq!(fields(&post(&app, &token, &both).await.1), ["parts"]);
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/sessions",
        &token,
        Some(b"{".to_vec()),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Over 1 MiB of transcript: 413, sent plain or gzip (the limit is on the decoded size).
    let big = session(&id, &"x".repeat(1024 * 1024 + 1));
    assert_eq!(
        post(&app, &token, &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (status, refused) = post_gzip(&app, &token, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    let exact = session(&id, &"x".repeat(1024 * 1024));
    assert_eq!(post(&app, &token, &exact).await.0, StatusCode::CREATED);
    let resp = app
        .http
        .post(app.url("/api/sessions"))
        .bearer_auth(&token)
        .header("content-encoding", "br")
        .body(session(&id, "t").to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Who: an operator names the agent; an agent cannot upload for another; no token, 401.
    let fresh = session(&uuid::Uuid::new_v4().to_string(), "t");
    assert_eq!(fields(&post(&app, &key, &fresh).await.1), ["agent_id"]);
    let mut other = fresh.clone();
    other["agent_id"] = json!(uuid::Uuid::new_v4());
    assert_eq!(post(&app, &token, &other).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post(&app, &key, &other).await.0, StatusCode::NOT_FOUND);
    assert_eq!(post(&app, "nope", &fresh).await.0, StatusCode::UNAUTHORIZED);
    let reader = app.operator_key("read", None).await;
    assert_eq!(post(&app, &reader, &fresh).await.0, StatusCode::FORBIDDEN);
}

async fn a_repeated_session_id_is_409_and_changes_nothing(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (_, token, key) = setup(&app).await;
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        post(&app, &token, &session(&id, "first")).await.0,
        StatusCode::CREATED
    );
    for _ in 0..2 {
        let mut again = session(&id, "second");
        again["source"] = json!("codex");
        let (status, refused) = post(&app, &token, &again).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["details"]["session_id"], id.as_str());
    }
    let (_, shown) = get(&app, &format!("/api/sessions/{id}"), &key).await;
    assert_eq!(shown["source"], "claude-code");
    assert_eq!(transcript_of(&app, &key, &id).await.1, "first");
}

async fn a_long_session_is_uploaded_in_parts_and_streamed_back_in_order(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (_, token, key) = setup(&app).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut body = session(&id, "");
    body.as_object_mut().expect("object").remove("transcript");
    body["parts"] = json!(3);
    let (status, made) = post(&app, &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["status"], "uploading");
    // Three parts of 700 KB: 2.1 MB in all, none cut.
    let part = |n: u8| vec![b'a' + n; 700_000];
    let put = |n: u32, bytes: Vec<u8>, gzip: bool| {
        let path = format!("/api/sessions/{id}/parts/{n}");
        let (app, token) = (&app, &token);
        async move { send(app, reqwest::Method::PUT, &path, token, Some(bytes), gzip).await }
    };
    assert_eq!(put(3, part(3), false).await.0, StatusCode::OK);
    assert_eq!(
        put(1, b"to be replaced".to_vec(), false).await.0,
        StatusCode::OK
    );
    let (status, early) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/sessions/{id}/complete"),
        &token,
        None,
        false,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(early["error"]["details"]["missing"], json!([2]));
    assert_eq!(transcript_of(&app, &key, &id).await.0, StatusCode::CONFLICT);
    assert_eq!(put(1, part(1), true).await.0, StatusCode::OK);
    assert_eq!(put(2, part(2), false).await.0, StatusCode::OK);
    assert_eq!(put(4, part(4), false).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        put(2, vec![b'z'; 1024 * 1024 + 1], false).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (status, done) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/sessions/{id}/complete"),
        &token,
        None,
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "complete");
    assert_eq!(done["transcript_bytes"], 2_100_000);
    let (status, text) = transcript_of(&app, &key, &id).await;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<u8> = [part(1), part(2), part(3)].concat();
    assert!(
        text.as_bytes() == want.as_slice(),
        "the parts come back whole and in order"
    );
    // Complete: the parts are fixed; completing again answers the same.
    assert_eq!(put(2, part(9), false).await.0, StatusCode::CONFLICT);
    let again = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/sessions/{id}/complete"),
        &token,
        None,
        false,
    )
    .await;
    assert_eq!(again.0, StatusCode::OK);
}

async fn callers_see_only_their_own_sessions(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (_, token, key) = setup(&app).await;
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        post(&app, &token, &session(&id, "mine")).await.0,
        StatusCode::CREATED
    );
    let other = app.tenant("other").await;
    let bob = app.agent(other.id, "bob").await;
    let bobs_token = app.token_for(bob.agent.id, other.id);
    let theirs = app.operator_key("read", Some(other.id)).await;
    let path = format!("/api/sessions/{id}");
    for who in [&bobs_token, &theirs] {
        assert_eq!(get(&app, &path, who).await.0, StatusCode::NOT_FOUND);
        let (_, listed) = get(&app, "/api/sessions", who).await;
        assert_eq!(listed["sessions"], json!([]));
    }
    let (_, all) = get(&app, "/api/sessions", &key).await;
    assert_eq!(all["sessions"].as_array().map(Vec::len), Some(1));
}

crate::postgres_profile!(postgresql_keeps_sessions_in_monthly_partitions);

/// The node made this month's partitions at start: a session lands in its month's.
async fn postgresql_keeps_sessions_in_monthly_partitions() {
    let app = TestApp::spawn(Profile::Postgres).await;
    let (_, token, _) = setup(&app).await;
    let id = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let mut body = session(&id.to_string(), "t");
    body["started_at"] = json!(now.to_rfc3339());
    body["ended_at"] = json!(now.to_rfc3339());
    assert_eq!(post(&app, &token, &body).await.0, StatusCode::CREATED);
    let month = now.format("%Y%m").to_string();
    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("pool");
    for table in ["sessions", "session_parts", "session_usage"] {
        let id_col = if table == "sessions" {
            "id"
        } else {
            "session_id"
        };
        let sql =
            format!("SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE {id_col} = $1");
        let (held,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("where");
        assert_eq!(held, format!("{table}_p{month}"));
    }
    // Three months are made: this one and the next two.
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid \
         WHERE inhparent = 'sessions'::regclass AND c.relname <> 'sessions_default'",
    )
    .fetch_one(&pool)
    .await
    .expect("partitions");
    assert_eq!(n, 3);
    pool.close().await;
}

async fn sessions_past_retention_go_with_their_transcripts_and_usage(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (_, token, key) = setup(&app).await;
    let store = &app.state.store;
    let now = chrono::Utc::now();
    // 200 days back: that month and the two made after it end before the cutoff, on
    // any date (the third ends at most about 77 days ago).
    let old_start = now - chrono::Duration::days(200);
    // PostgreSQL: the old month gets its partitions (as if the node ran back then).
    store
        .ensure_session_partitions(old_start.timestamp_millis())
        .await
        .expect("partitions");
    let (old, recent) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (id, at) in [(old, old_start), (recent, now - chrono::Duration::days(1))] {
        let mut body = session(&id.to_string(), "t");
        body["started_at"] = json!(at.to_rfc3339());
        body["ended_at"] = json!(at.to_rfc3339());
        assert_eq!(post(&app, &token, &body).await.0, StatusCode::CREATED);
    }
    let cutoff = (now - chrono::Duration::days(30)).timestamp_millis();
    let dropped = store
        .drop_old_session_partitions(cutoff)
        .await
        .expect("drop");
    assert_eq!(dropped, if p == Profile::Postgres { 3 } else { 0 });
    while store.delete_old_sessions(cutoff, 2).await.expect("delete") > 0 {}
    let path = |id: uuid::Uuid| format!("/api/sessions/{id}");
    let get = reqwest::Method::GET;
    assert_eq!(
        send(&app, get.clone(), &path(old), &key, None, false)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, get, &path(recent), &key, None, false).await.0,
        StatusCode::OK
    );
    assert_eq!(transcript_of(&app, &key, &recent.to_string()).await.1, "t");
    // Its id is free again: nothing of it is left.
    let mut again = session(&old.to_string(), "t");
    again["started_at"] = json!(now.to_rfc3339());
    again["ended_at"] = json!(now.to_rfc3339());
    assert_eq!(post(&app, &token, &again).await.0, StatusCode::CREATED);
}
