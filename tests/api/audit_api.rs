//! `PATCH /api/jobs/{id}` (cancel, reschedule) and the audit log: every operator action
//! through the API or the CLI leaves an entry naming who, what and on what — never a
//! secret.

use std::time::Duration;

use nexus::store::{Enqueued, NewJob};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_profiles;
use crate::cli::{json_lines, nexus};
use crate::helpers::{Profile, TestApp};
use crate::operator_api::{call, spawn_patient, walk};

both_profiles!(
    a_cancelled_job_never_runs_and_a_rescheduled_one_does,
    audit_entries_name_each_action_and_hold_no_secret,
    the_cli_records_and_lists_audit_entries,
);

/// A job due in an hour, straight into the queue's table.
async fn later_job(app: &TestApp, tenant: nexus_proto::TenantId, key: &str) -> Uuid {
    let job = NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "ingest".into(),
        kind: "ingest.deliver".into(),
        dedupe_key: key.into(),
        payload: "{}".into(),
        trace_id: None,
        max_attempts: 1,
        run_at: nexus::time::now_ms() + 3_600_000,
    };
    match app.state.store.enqueue(job).await.expect("enqueue") {
        Enqueued::Created(id) => id,
        Enqueued::Duplicate(id) => panic!("duplicate {id}"),
    }
}

/// Polls the job until it has left the queue, or panics after 10 s.
async fn finished(app: &TestApp, key: &str, id: Uuid) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = app.get_json(&format!("/api/jobs/{id}"), key).await;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still queued: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_cancelled_job_never_runs_and_a_rescheduled_one_does(p: Profile) {
    let app = TestApp::spawn(p).await;
    let key = app.operator_key("write", None).await;
    let t = app.tenant("acme").await;
    let (cancelled, rescheduled) = (
        later_job(&app, t.id, "a").await,
        later_job(&app, t.id, "b").await,
    );

    let path = format!("/api/jobs/{cancelled}");
    let (status, job) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{job}"
    );
    let now = chrono::Utc::now().to_rfc3339();
    let (status, refused) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"run_at": now})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled job cannot be brought back: {refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled"))
    );

    let other = format!("/api/jobs/{rescheduled}");
    let (status, job) = call(
        &app,
        Method::PATCH,
        &other,
        &key,
        Some(json!({"run_at": now})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let ran = finished(&app, &key, rescheduled).await;
    assert!(ran["attempts"].as_u64() >= Some(1), "{ran}");
    let (status, refused) = call(
        &app,
        Method::PATCH,
        &other,
        &key,
        Some(json!({"status": "cancelled"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    // Workers ran the due job meanwhile; the cancelled one stayed untouched.
    let listed = app.get_json("/api/jobs?status=cancelled", &key).await;
    let jobs = listed["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(
        (jobs[0]["id"].as_str(), jobs[0]["attempts"].as_u64()),
        (Some(cancelled.to_string().as_str()), Some(0))
    );
    let (status, bad) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"run_at": "soon"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"]["details"]["fields"]["run_at"].is_string(),
        "{bad}"
    );
}

async fn audit_entries_name_each_action_and_hold_no_secret(p: Profile) {
    let app = spawn_patient(p).await;
    let admin = app.operator_key("admin", None).await;
    let (_, t) = call(
        &app,
        Method::POST,
        "/api/tenants",
        &admin,
        Some(json!({"name": "acme"})),
    )
    .await;
    let tenant = t["id"].as_str().expect("id").to_owned();
    let (_, made) = call(
        &app,
        Method::POST,
        &format!("/api/tenants/{tenant}/agents"),
        &admin,
        Some(json!({"name": "bot"})),
    )
    .await;
    let agent = made["agents"][0]["id"].as_str().expect("agent").to_owned();
    let mut secrets = vec![
        made["agents"][0]["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    ];
    let (_, rotated) = call(
        &app,
        Method::POST,
        &format!("/api/agents/{agent}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    secrets.push(
        rotated["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let (_, key) = call(
        &app,
        Method::POST,
        "/api/operator-keys",
        &admin,
        Some(json!({"name": "ci", "scopes": "read", "tenant_id": tenant})),
    )
    .await;
    secrets.push(key["key"].as_str().expect("key").to_owned());
    for action in ["disable", "enable"] {
        call(
            &app,
            Method::POST,
            &format!("/api/agents/{agent}/{action}"),
            &admin,
            None,
        )
        .await;
    }
    call(
        &app,
        Method::PATCH,
        &format!("/api/agents/{agent}"),
        &admin,
        Some(json!({"name": "bot2"})),
    )
    .await;
    for action in ["suspend", "resume"] {
        call(
            &app,
            Method::POST,
            &format!("/api/tenants/{tenant}/{action}"),
            &admin,
            None,
        )
        .await;
    }
    let tid: nexus_proto::TenantId = tenant.parse().expect("tenant id");
    let job = later_job(&app, tid, "j").await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/jobs/{job}"),
        &admin,
        Some(json!({"status": "cancelled"})),
    )
    .await;
    let key_id = key["id"].as_str().expect("key id");
    call(
        &app,
        Method::DELETE,
        &format!("/api/operator-keys/{key_id}"),
        &admin,
        None,
    )
    .await;

    let entries = walk(&app, "/api/audit", "entries", &admin, 3).await;
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    let expected = [
        "key.revoke",
        "job.cancel",
        "tenant.resume",
        "tenant.suspend",
        "agent.update",
        "agent.enable",
        "agent.disable",
        "key.create",
        "agent.rotate_secret",
        "agent.create",
        "tenant.create",
    ];
    // Newest first; the operator key used by the test was made before (by the CLI's path).
    assert_eq!(&actions[..expected.len()], expected, "{entries:?}");
    let disable = &entries[6];
    assert_eq!(
        (disable["target"].as_str(), disable["tenant_id"].as_str()),
        (Some(agent.as_str()), Some(tenant.as_str()))
    );
    assert_eq!(disable["actor"], "test");
    assert!(disable["actor_key_id"].is_string() && disable["details"].is_object());
    assert!(chrono::DateTime::parse_from_rfc3339(disable["at"].as_str().expect("at")).is_ok());
    let text = serde_json::to_string(&entries).expect("json");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }

    let only = app
        .get_json("/api/audit?action=agent.disable", &admin)
        .await;
    assert_eq!(only["entries"].as_array().map(Vec::len), Some(1), "{only}");
    let other = app.tenant("other").await;
    app.agent(other.id, "x").await;
    let bound = app.operator_key("read", Some(other.id)).await;
    let theirs = walk(&app, "/api/audit", "entries", &bound, 50).await;
    assert!(!theirs.is_empty());
    assert!(
        theirs
            .iter()
            .all(|e| e["tenant_id"] == other.id.to_string()),
        "{theirs:?}"
    );
}

async fn the_cli_records_and_lists_audit_entries(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let id = t.id.to_string();
    json_lines(&nexus(&app.db, &["tenant", "suspend", &id]));
    json_lines(&nexus(
        &app.db,
        &["tenant", "update", &id, "--tier", "free"],
    ));
    let listed = json_lines(&nexus(
        &app.db,
        &[
            "audit",
            "list",
            "--tenant",
            &id,
            "--action",
            "tenant.suspend",
        ],
    ));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["actor"].as_str(), &listed[0]["actor_key_id"]),
        (Some("cli"), &Value::Null)
    );
    let admin = app.operator_key("admin", None).await;
    let api = app
        .get_json(
            &format!("/api/audit?tenant={id}&action=tenant.update"),
            &admin,
        )
        .await;
    assert_eq!(api["entries"][0]["details"]["tier"], "free", "{api}");
    let shown = app.get_json(&format!("/api/tenants/{id}"), &admin).await;
    assert_eq!(
        (shown["status"].as_str(), shown["tier"].as_str()),
        (Some("suspended"), Some("free"))
    );
}
