//! Webhooks stay inside their tenant: a tenant's own secret cannot store deliveries for
//! another tenant's team or webhook, nor make another tenant's deliveries "duplicate".

use reqwest::StatusCode;
use serde_json::json;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::{CLICKUP_SECRET, SLACK_SECRET, hmac_hex, now_s, slack_event};

both_profiles!(
    a_payload_for_another_tenants_source_is_refused,
    one_delivery_id_in_two_tenants_makes_two_jobs,
);

async fn a_payload_for_another_tenants_source_is_refused(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (victim, attacker) = (app.tenant("victim").await, app.tenant("attacker").await);
    app.clickup_source(victim.id, "wh-victim").await;
    let own = app.clickup_source(attacker.id, "wh-attacker").await;
    // Signed with the attacker's own secret, sent to the attacker's own URL, but naming
    // the victim's webhook and a history item the victim will be sent.
    let forged = json!({"event": "taskCreated", "task_id": "86a1", "webhook_id": "wh-victim",
                        "history_items": [{"id": "2800763136717140857"}]})
    .to_string();
    let (status, resp) = app
        .post_signed(
            &own.url_path,
            "x-signature",
            hmac_hex(CLICKUP_SECRET, forged.as_bytes()),
            &forged,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source")),
        "{resp}"
    );
    assert_eq!(
        app.job_count().await,
        0,
        "nothing stored for the forged delivery"
    );
    // The victim's real delivery is accepted, not taken for a duplicate.
    let (status, real) = app
        .post_signed(
            "/webhooks/clickup",
            "x-signature",
            hmac_hex(CLICKUP_SECRET, forged.as_bytes()),
            &forged,
        )
        .await;
    assert_eq!(
        (status, real["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );

    // The same for Slack: the attacker's URL with the victim's team.
    app.slack_source(victim.id, "TVICTIM").await;
    let own_slack = app.slack_source(attacker.id, "TATTACK").await;
    let (status, resp) = app
        .post_slack(
            &own_slack.url_path,
            &slack_event("Ev9", "TVICTIM"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source"))
    );
    assert_eq!(app.job_count().await, 1);
}

async fn one_delivery_id_in_two_tenants_makes_two_jobs(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    app.slack_source(a.id, "TA").await;
    app.slack_source(b.id, "TB").await;
    let mut jobs = Vec::new();
    for team in ["TA", "TB"] {
        let (status, resp) = app
            .post_slack(
                "/webhooks/slack",
                &slack_event("EvSame", team),
                now_s(),
                SLACK_SECRET,
            )
            .await;
        assert_eq!(
            (status, resp["status"].as_str()),
            (StatusCode::OK, Some("accepted")),
            "{resp}"
        );
        jobs.push(resp["job_id"].clone());
    }
    assert_ne!(jobs[0], jobs[1], "each tenant has its own job");
    assert_eq!(app.job_count().await, 2);
}
