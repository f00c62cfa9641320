//! put.io: a transfer callback reaches the source's agent once, as the protocol README's
//! `context_update`; a wrong token or a body without a transfer id stores nothing;
//! `nexus putio register` adds a transfer through put.io's API (a local fake) with the
//! source's callback URL.

use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::agent_client::event;
use crate::both_profiles;
use crate::cli::{json_lines, nexus, one};
use crate::helpers::{Profile, TestApp, TestDb, secrets_key};

both_profiles!(
    a_transfer_callback_reaches_the_agent_once,
    a_wrong_token_or_a_body_without_an_id_stores_nothing,
    register_adds_a_transfer_with_the_sources_callback,
);

const FORM: &str = "application/x-www-form-urlencoded";

/// A put.io source for `agent`, made through the operator API: its one-time callback path.
async fn putio_source(app: &TestApp, tenant: &str, agent: &str) -> (String, String) {
    let key = app.operator_key("admin", None).await;
    let path = format!("/api/tenants/{tenant}/sources");
    let (status, created) = app
        .post_json(&path, &key, json!({"kind": "putio", "to_agent": agent}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let callback = created["callback_path"].as_str().expect("callback_path");
    let token = callback.strip_prefix("/webhooks/putio/").expect("path");
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    );
    // Shown once: reading the source back does not show the token.
    let shown = app.get_json(&format!("/api/sources/{id}"), &key).await;
    assert!(shown.get("callback_path").is_none(), "{shown}");
    assert!(!shown.to_string().contains(token), "{shown}");
    (id, callback.to_owned())
}

async fn post(app: &TestApp, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn a_transfer_callback_reaches_the_agent_once(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let (_, callback) = putio_source(&app, &t.id.to_string(), &a.agent.id.to_string()).await;
    let mut agent = app.online(&a, t.id).await;

    // put.io's callback: the transfer as form fields, more than Nexus keeps.
    let form = "id=42&name=ubuntu-24.04.iso&status=COMPLETED&file_id=901&size=6114656256\
                &save_parent_id=0&source=magnet%3A%3Fxt%3Durn%3Abtih%3Aabc&percent_done=100";
    let (status, first) = post(&app, &callback, FORM, form).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{first}"
    );
    let (kind, _, _, data) = event(&agent.recv().await);
    assert_eq!(kind, "context_update");
    assert_eq!(
        data,
        json!({
            "source": "putio",
            "text": "put.io transfer 42 ubuntu-24.04.iso: COMPLETED",
            "transfer": {"id": 42, "name": "ubuntu-24.04.iso", "status": "COMPLETED",
                         "file_id": 901, "size": 6114656256_u64, "save_parent_id": 0,
                         "source": "magnet:?xt=urn:btih:abc"}
        })
    );

    // put.io calls again for the same transfer: the same job, no second event.
    let (status, again) = post(&app, &callback, FORM, form).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(again["job_id"], first["job_id"]);
    // The next event the agent gets is the next transfer's (sent as JSON this time).
    let next = json!({"id": 43, "name": "debian.iso", "status": "COMPLETED"}).to_string();
    let (status, _) = post(&app, &callback, "application/json", &next).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, _, data) = event(&agent.recv().await);
    assert_eq!(data["transfer"]["id"], 43, "{data}");
    assert_eq!(app.job_count().await, 2);
}

async fn a_wrong_token_or_a_body_without_an_id_stores_nothing(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let (_, callback) = putio_source(&app, &t.id.to_string(), &a.agent.id.to_string()).await;

    let (status, wrong) = post(&app, "/webhooks/putio/not-the-token", FORM, "id=1").await;
    assert_eq!(
        (status, wrong["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source")),
        "{wrong}"
    );
    let (status, no_id) = post(&app, &callback, FORM, "name=x&status=COMPLETED").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{no_id}");
    let message = no_id["error"]["message"].as_str().expect("message");
    assert!(message.contains("no transfer `id`"), "{message}");
    let (status, _) = post(&app, &callback, FORM, "id=7&size=big").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.job_count().await, 0);
}

/// What the fake put.io API saw: method, path, headers and form fields.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    auth: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

const PUTIO_TOKEN: &str = "putio-oauth-token-0123";

async fn fake_putio(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let refused = form.iter().any(|(k, v)| k == "url" && v == "not-a-link");
    seen.lock().expect("lock").push(Seen {
        method,
        path: uri.path().to_owned(),
        auth: header("authorization"),
        content_type: header("content-type"),
        form,
    });
    if refused {
        let error = json!({"status": "ERROR", "error_type": "UNKNOWN_URL_TYPE",
                           "error_message": "The URL could not be recognized", "status_code": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(error));
    }
    let transfer = json!({"id": 77, "name": "ubuntu-24.04.iso", "status": "IN_QUEUE"});
    (
        StatusCode::OK,
        axum::Json(json!({"status": "OK", "transfer": transfer})),
    )
}

/// `nexus putio register …` against `api`, with the put.io token in the environment.
async fn register(db: &TestDb, api: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"));
    cmd.args(["putio", "register"])
        .args(args)
        .args([
            "--api-url",
            api,
            "--callback-base",
            "https://nexus.example.com/",
        ])
        .env("DATABASE_URL", &db.url)
        .env("NEXUS_JWT_SECRET", "cli-test-secret-0123456789abcdefghij")
        .envs(secrets_key(&db.url).map(|k| ("NEXUS_SECRETS_KEY", k)))
        .env("PUTIO_TOKEN", PUTIO_TOKEN)
        .env_remove("NEXUS_PUBLIC_URL")
        .env_remove("RUST_LOG");
    // The fake answers on this runtime while the command runs.
    tokio::task::spawn_blocking(move || cmd.output().expect("run nexus"))
        .await
        .expect("join")
}

async fn register_adds_a_transfer_with_the_sources_callback(p: Profile) {
    let db = TestDb::new(p).await;
    one(&nexus(&db, &["migrate"]));
    let tenant = one(&nexus(&db, &["tenant", "create", "--name", "acme"]));
    let t = tenant["id"].as_str().expect("id");
    let agent = one(&nexus(
        &db,
        &["agent", "create", "--tenant", t, "--name", "dl"],
    ));
    let a = agent["id"].as_str().expect("id");
    let add = [
        "source", "add", "--tenant", t, "--kind", "putio", "--agent", a,
    ];
    let source = one(&nexus(&db, &add));
    let source_id = source["id"].as_str().expect("id");
    let callback = source["callback_path"].as_str().expect("callback_path");
    let listed = json_lines(&nexus(&db, &["source", "list", "--tenant", t]));
    assert!(
        listed[0].get("callback_path").is_none(),
        "shown once: {listed:?}"
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = Router::new().fallback(fake_putio).with_state(seen.clone());
    let server = tokio::spawn(async move { axum::serve(listener, fake).await });

    let magnet = "magnet:?xt=urn:btih:abc&dn=ubuntu";
    let args = [
        "--source",
        source_id,
        "--url",
        magnet,
        "--save-parent-id",
        "12",
    ];
    let out = register(&db, &api, &args).await;
    assert_eq!(
        one(&out),
        json!({"source_id": source_id,
               "transfer": {"id": 77, "status": "IN_QUEUE", "name": "ubuntu-24.04.iso"}})
    );
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(
        (&r.method, r.path.as_str()),
        (&Method::POST, "/v2/transfers/add")
    );
    assert_eq!(r.auth.as_deref(), Some("Bearer putio-oauth-token-0123"));
    assert_eq!(r.content_type.as_deref(), Some(FORM));
    let pairs = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let url = format!("https://nexus.example.com{callback}");
    let expected = [
        ("url", magnet),
        ("callback_url", url.as_str()),
        ("save_parent_id", "12"),
    ];
    assert_eq!(r.form, pairs(&expected));

    // put.io's refusal: a non-zero exit with its message, and the token nowhere.
    let out = register(&db, &api, &["--source", source_id, "--url", "not-a-link"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("The URL could not be recognized"),
        "{stderr}"
    );
    let printed = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!printed.contains(PUTIO_TOKEN), "{printed}");
    server.abort();
}
