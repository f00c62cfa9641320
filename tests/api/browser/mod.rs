//! The dashboard in a real headless Chromium: sign in, live presence, replaying a dead
//! letter and finding the replay in the audit log. A failing test leaves a screenshot
//! in `target/browser-failures/`.

mod webdriver;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nexus::app::Extras;
use nexus::queue::{Done, JobError, Processor};
use nexus::store::{Enqueued, Job, JobStatus, ModelUsage, NewJob, NewSession};
use nexus_proto::TenantId;
use serde_json::json;
use uuid::Uuid;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};
use webdriver::Browser;

both_profiles!(
    signing_in_needs_a_valid_key_and_signing_out_forgets_it,
    an_agent_appears_and_disappears_without_a_reload,
    a_dead_letter_is_replayed_after_confirmation,
    the_usage_card_shows_cost_per_day_agent_and_model,
);

/// A laptop screen.
const WIDTH: u32 = 1366;
const HEIGHT: u32 = 768;

/// Runs `steps` in a fresh browser; on failure saves a screenshot named after `test`
/// before failing. Without Chromium the test is skipped (failed in CI).
async fn in_browser<F>(test: &str, steps: F)
where
    F: for<'b> FnOnce(&'b Browser) -> BoxFuture<'b, ()>,
{
    let Some((chromium, driver)) = webdriver::installed() else {
        return;
    };
    let browser = Browser::start(&chromium, &driver, WIDTH, HEIGHT).await;
    let outcome = AssertUnwindSafe(steps(&browser)).catch_unwind().await;
    if let Err(panic) = outcome {
        let path = failure_dir().join(format!("{test}.png"));
        browser.screenshot(&path).await;
        eprintln!("screenshot of the failure: {}", path.display());
        browser.quit().await;
        std::panic::resume_unwind(panic);
    }
    browser.quit().await;
}

/// `target/browser-failures/` of the build running the tests.
fn failure_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("browser-failures")
}

/// Signs in on the dashboard with `key` and waits for the panels.
async fn sign_in(b: &Browser, app: &TestApp, key: &str) {
    b.goto(&app.url("/dashboard")).await;
    b.type_into("#key-input", key).await;
    b.click("#sign-in-button").await;
    b.wait_visible("#dashboard").await;
}

async fn signing_in_needs_a_valid_key_and_signing_out_forgets_it(p: Profile) {
    let app = TestApp::spawn(p).await;
    app.tenant("acme").await;
    let key = app.operator_key("read", None).await;
    let name = format!("{}-{p:?}", "sign_in");
    in_browser(&name, |b| {
        async move {
            b.goto(&app.url("/dashboard")).await;
            b.type_into("#key-input", "nxo_not-a-real-key").await;
            b.click("#sign-in-button").await;
            let message = b.text("#sign-in-error").await;
            assert!(message.contains("not accepted"), "{message}");
            let hidden = b
                .script(
                    "return document.getElementById('dashboard').hidden",
                    json!([]),
                )
                .await;
            assert_eq!(hidden, json!(true), "a wrong key shows no dashboard");

            b.script("document.getElementById('key-input').value = ''", json!([]))
                .await;
            sign_in(b, &app, &key).await;
            let tenant = b
                .script(
                    "return document.getElementById('tenant-picker').selectedOptions[0].text",
                    json!([]),
                )
                .await;
            assert_eq!(tenant, "acme");
            let url = b.url().await;
            assert!(
                !url.contains(&key),
                "the key never goes into the URL: {url}"
            );

            b.click("#sign-out").await;
            b.wait_visible("#sign-in-form").await;
            let kept = b.script("return sessionStorage.length", json!([])).await;
            assert_eq!(kept, json!(0), "signing out forgets the key");
            b.goto(&app.url("/dashboard")).await;
            b.wait_visible("#sign-in-form").await;
        }
        .boxed()
    })
    .await;
}

async fn an_agent_appears_and_disappears_without_a_reload(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let agent = app.agent(t.id, "scout").await;
    let key = app.operator_key("read", None).await;
    let name = format!("agents-{p:?}");
    in_browser(&name, |b| {
        async move {
            sign_in(b, &app, &key).await;
            b.wait_visible("#agents-empty").await;
            b.wait_until(
                "the stream to be live",
                "return document.getElementById('live-state').dataset.mode === 'on'",
                json!([]),
            )
            .await;
            let row = format!("#agents-body tr[data-agent-id='{}']", agent.agent.id);

            let ws = app.online(&agent, t.id).await;
            let shown = b.text(&row).await;
            assert!(shown.contains("scout"), "{shown}");
            assert!(
                shown.contains(&app.state.node_id),
                "the node is shown: {shown}"
            );
            assert_eq!(b.text("#agents-count").await, "1");

            drop(ws);
            b.wait_until(
                "the agent to leave the list",
                "return document.querySelector(arguments[0]) === null",
                json!([row]),
            )
            .await;
            b.wait_visible("#agents-empty").await;
        }
        .boxed()
    })
    .await;
}

/// Fails permanently on its first run, succeeds on every later one: a provider that
/// refused a request, then was fixed.
#[derive(Default)]
struct RefusesOnce(AtomicU32);

impl Processor for RefusesOnce {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                Err(JobError::permanent(
                    "provider_rejected",
                    "provider answered 400: channel_not_found",
                ))
            } else {
                Ok(Done::default())
            }
        }
        .boxed()
    }
}

async fn dead_letter(app: &TestApp, tenant: TenantId) -> Uuid {
    let mut outcomes = app.state.queue.subscribe();
    let job = NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "tool".into(),
        kind: "test.refuses_once".into(),
        dedupe_key: "dead-1".into(),
        payload: "{}".into(),
        trace_id: None,
        max_attempts: 3,
        run_at: 0,
    };
    let Enqueued::Created(id) = app.state.queue.enqueue(job).await.expect("enqueue") else {
        panic!("a new job");
    };
    loop {
        let o = tokio::time::timeout(std::time::Duration::from_secs(15), outcomes.recv())
            .await
            .expect("an outcome in time")
            .expect("outcomes");
        if o.job_id == id {
            assert_eq!(o.status, JobStatus::Dead);
            return id;
        }
    }
}

async fn a_dead_letter_is_replayed_after_confirmation(p: Profile) {
    let extras = Extras {
        other_jobs: HashMap::from([(
            "test.refuses_once".to_owned(),
            Arc::new(RefusesOnce::default()) as Arc<dyn Processor>,
        )]),
        ..Extras::default()
    };
    let app = TestApp::spawn_full(TestDb::new(p).await, |_| {}, extras).await;
    let t = app.tenant("acme").await;
    let id = dead_letter(&app, t.id).await;
    let key = app.operator_key("read,write", None).await;
    let name = format!("replay-{p:?}");
    in_browser(&name, |b| {
        async move {
            sign_in(b, &app, &key).await;
            let row = format!("#dead-body tr[data-job-id='{id}']");
            let shown = b.text(&row).await;
            assert!(
                shown.contains("channel_not_found"),
                "the last error is shown: {shown}"
            );

            // The error history, one click away.
            b.click(&format!("{row} a")).await;
            let detail = b.text("#job-detail").await;
            assert!(
                detail.contains("Error history") && detail.contains("channel_not_found"),
                "{detail}"
            );

            // Cancelling the confirmation changes nothing.
            b.click(&format!("{row} button.replay")).await;
            b.wait_visible("#confirm-dialog").await;
            b.click("#confirm-cancel").await;
            let job = app.get_json(&format!("/api/jobs/{id}"), &key).await;
            assert_eq!(job["status"], "dead", "cancel does not replay");
            b.wait_visible(&row).await;

            b.click(&format!("{row} button.replay")).await;
            b.wait_visible("#confirm-dialog").await;
            b.click("#confirm-ok").await;
            b.wait_until(
                "the job to leave the dead letters",
                "return document.querySelector(arguments[0]) === null",
                json!([row]),
            )
            .await;
            let notice = b.text("#dead-message").await;
            assert!(notice.contains("Replayed"), "{notice}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                let job = app.get_json(&format!("/api/jobs/{id}"), &key).await;
                if job["status"] == "done" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the replayed job runs: {job}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }

            // The replay is in the audit log, naming the job.
            b.click("#audit-refresh").await;
            let entry = "#audit-body tr[data-action='job.replay']";
            b.wait_visible(entry).await;
            let shown = b.text(entry).await;
            assert!(
                shown.contains(&id.to_string()),
                "the audit entry names the job: {shown}"
            );
        }
        .boxed()
    })
    .await;
}

async fn the_usage_card_shows_cost_per_day_agent_and_model(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let agent = app.agent(t.id, "scout").await;
    let now = nexus::time::now_ms();
    // Built-in prices: 1M input at $3 and 100k output at $15 per million.
    let session = NewSession {
        id: Uuid::now_v7(),
        tenant_id: t.id,
        agent_id: agent.agent.id,
        source: "test".into(),
        started_at: now,
        ended_at: now,
        cost_usd: None,
        metadata: None,
        usage: vec![ModelUsage {
            model: "claude-sonnet-4-5-20250929".into(),
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        }],
        parts: 1,
    };
    app.state
        .store
        .create_session(&session, None)
        .await
        .expect("session");
    // An alert past its threshold fires ($4.50 of $4): the alerts card lists it.
    let spec = nexus::admin::AlertSpec {
        tenant: t.id,
        agent: None,
        period: nexus::store::AlertPeriod::Day,
        threshold_usd: 4.0,
        webhook_url: None,
        slack_channel: Some("C0ALERTS".into()),
    };
    let alert = nexus::admin::add_alert(&app.state.store, &nexus::admin::Actor::Cli, spec)
        .await
        .expect("alert");
    let (store, queue, prices) = (&app.state.store, &app.state.queue, &app.state.config.prices);
    let fired = nexus::alerts::evaluate(store, queue, prices, now)
        .await
        .expect("round");
    assert_eq!(fired, 1);
    // A worker that reported long ago (interval 60 s): the workers card shows it stale.
    let report = nexus::store::WorkerReport {
        agent_id: agent.agent.id,
        tenant_id: t.id,
        host: "build-box".into(),
        version: "1.0.0".into(),
        interval_s: 60,
        started_at: now - 3_600_000,
        last_scan_at: Some(now - 600_000),
        last_upload_at: None,
        sessions_seen: 3,
        uploaded: 2,
        queued: 7,
        failing: 1,
        parked: 0,
        consecutive_failures: 0,
        alert_after: 0,
        last_error: None,
        seen_at: now - 600_000,
    };
    app.state.store.save_worker(&report).await.expect("worker");
    let key = app.operator_key("read", None).await;
    let name = format!("usage-{p:?}");
    let fired_row = format!("#alerts-body tr[data-alert-id='{}']", alert.alert.id);
    let worker_row = format!(
        "#workers-body tr[data-worker='{}/build-box']",
        agent.agent.id
    );
    in_browser(&name, |b| {
        async move {
            sign_in(b, &app, &key).await;
            let total = b
                .wait_until(
                    "the cost chart",
                    "const t = document.querySelector('#chart-cost .total'); return t && t.textContent;",
                    json!([]),
                )
                .await;
            assert_eq!(total, "$4.50 in 14 days");
            let agents = b.text("#usage-agents-body").await;
            assert!(agents.contains("scout") && agents.contains("$4.50"), "{agents}");
            let models = b.text("#usage-models-body").await;
            assert!(models.contains("claude-sonnet-4-5-20250929"), "{models}");
            assert!(b.text("#chart-tokens .total").await.contains("1.1M"));
            b.wait_visible(&fired_row).await;
            let row = b.text(&fired_row).await;
            assert!(row.contains("$4.50") && row.contains("over $4.00"), "{row}");
            b.wait_visible(&worker_row).await;
            let row = b.text(&worker_row).await;
            assert!(row.contains("scout") && row.contains("stale") && row.contains('7'), "{row}");
        }
        .boxed()
    })
    .await;
}
