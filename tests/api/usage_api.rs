//! `GET /api/usage` and `nexus usage`: token sums per day, model and agent, priced by
//! the node's table when asked (so a new table re-prices history), within the key's
//! tenant; bad parameters are 400s naming the field.

use std::sync::Arc;

use nexus::config::Prices;
use nexus::store::{ModelUsage, NewSession};
use nexus_proto::{AgentId, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::both_profiles;
use crate::cli::nexus;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::operator_api::call;

both_profiles!(
    usage_is_summed_and_priced_per_day_model_and_agent,
    a_new_price_table_reprices_past_usage,
    a_tenant_bound_key_sees_only_its_tenants_usage,
    bad_parameters_are_400s_naming_the_field,
    the_cli_prints_the_usage_table,
);

/// `alpha` has a price for each kind of token; `beta` charges no cache.
const PRICES: &str = r#"
[models.alpha]
input = 1.0
output = 2.0
cache_read = 0.5
cache_write = 4.0
[models.beta]
input = 10.0
output = 20.0
cache_read = 0.0
cache_write = 0.0
"#;

/// 2025-11-01T00:00:00Z: the seeded sessions start at 10:00 on this day and the two after.
const DAY0_MS: i64 = 1_761_955_200_000;
const DAY_MS: i64 = 86_400_000;
const RANGE: &str = "from=2025-11-01T00:00:00Z&to=2025-11-04T00:00:00Z";

async fn spawn_with_prices(db: TestDb, prices: &str) -> TestApp {
    let prices = Arc::new(Prices::parse(prices).expect("prices"));
    TestApp::spawn_on(db, |c| c.prices = prices).await
}

fn usage(model: &str, input: u64, output: u64, read: u64, write: u64) -> ModelUsage {
    ModelUsage {
        model: model.into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: read,
        cache_write_tokens: write,
    }
}

async fn session(app: &TestApp, tenant: TenantId, agent: AgentId, at: i64, usage: Vec<ModelUsage>) {
    let new = NewSession {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        agent_id: agent,
        source: "test".into(),
        started_at: at,
        ended_at: at + 60_000,
        cost_usd: None,
        metadata: None,
        usage,
        parts: 1,
    };
    app.state
        .store
        .create_session(&new, None)
        .await
        .expect("session");
}

/// Agents A and B, one session each on days 0–2 using both models: for day d,
/// alpha: input 100k·(d+1), output 10k, cache read 200k, cache write 0 (A) or 50k (B);
/// beta: input 10k, output 1k·(d+1). Plus an unpriced model at exactly day 3, 00:00.
async fn seed(app: &TestApp) -> (TenantId, [AgentId; 2]) {
    let tenant = app.tenant("acme").await.id;
    let a = app.agent(tenant, "a").await.agent.id;
    let b = app.agent(tenant, "b").await.agent.id;
    for d in 0..3u64 {
        for (i, agent) in [a, b].into_iter().enumerate() {
            let at = DAY0_MS + d as i64 * DAY_MS + 10 * 3_600_000 + i as i64 * 60_000;
            let write = if i == 0 { 0 } else { 50_000 };
            let models = vec![
                usage(
                    "alpha-2026-01-01",
                    100_000 * (d + 1),
                    10_000,
                    200_000,
                    write,
                ),
                usage("beta", 10_000, 1_000 * (d + 1), 0, 0),
            ];
            session(app, tenant, agent, at, models).await;
        }
    }
    let mystery = vec![usage("mystery-1", 1_000_000, 0, 0, 0)];
    session(app, tenant, a, DAY0_MS + 3 * DAY_MS, mystery).await;
    (tenant, [a, b])
}

async fn get(app: &TestApp, key: &str, query: &str) -> Value {
    let (status, body) = call(app, Method::GET, &format!("/api/usage?{query}"), key, None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn close(v: &Value, usd: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - usd).abs() < 1e-9)
}

/// `[key, input, output, cache_read, cache_write]` and the cost of each row.
fn rows(report: &Value) -> Vec<(String, [u64; 4], f64)> {
    let n = |r: &Value, f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f}: {r}"));
    report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|r| {
            let tokens = [
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
            ]
            .map(|f| n(r, f));
            (
                r["key"].as_str().expect("key").to_owned(),
                tokens,
                r["cost_usd"].as_f64().expect("cost"),
            )
        })
        .collect()
}

fn assert_rows(report: &Value, expected: &[(&str, [u64; 4], f64)]) {
    let got = rows(report);
    assert_eq!(got.len(), expected.len(), "{report}");
    for ((key, tokens, cost), (want_key, want_tokens, want_cost)) in got.iter().zip(expected) {
        assert_eq!((key.as_str(), tokens), (*want_key, want_tokens), "{report}");
        assert!(
            (cost - want_cost).abs() < 1e-9,
            "{key}: {cost} ≠ {want_cost}: {report}"
        );
    }
}

async fn usage_is_summed_and_priced_per_day_model_and_agent(p: Profile) {
    let app = spawn_with_prices(TestDb::new(p).await, PRICES).await;
    let (tenant, [a, b]) = seed(&app).await;
    let key = app.operator_key("read", None).await;

    // Day d: alpha A 0.22 + 0.1d, alpha B 0.42 + 0.1d, beta 2 × (0.12 + 0.02d).
    let by_day = get(&app, &key, &format!("tenant={tenant}&{RANGE}")).await;
    assert_eq!(by_day["group_by"], "day");
    assert_eq!(by_day["from"], "2025-11-01T00:00:00.000Z");
    assert_eq!(by_day["to"], "2025-11-04T00:00:00.000Z");
    assert_rows(
        &by_day,
        &[
            ("2025-11-01", [220_000, 22_000, 400_000, 50_000], 0.88),
            ("2025-11-02", [420_000, 24_000, 400_000, 50_000], 1.12),
            ("2025-11-03", [620_000, 26_000, 400_000, 50_000], 1.36),
        ],
    );
    let total = &by_day["total"];
    assert!(close(&total["cost_usd"], 3.36), "{total}");
    assert_eq!(total["input_tokens"], 1_260_000);
    assert_eq!(by_day["unpriced_models"], serde_json::json!([]));

    // alpha: 1.2M × 1 + 60k × 2 + 1.2M × 0.5 + 150k × 4 (per million); beta: 60k × 10 + 12k × 20.
    let by_model = get(
        &app,
        &key,
        &format!("tenant={tenant}&{RANGE}&group_by=model"),
    )
    .await;
    assert_rows(
        &by_model,
        &[
            (
                "alpha-2026-01-01",
                [1_200_000, 60_000, 1_200_000, 150_000],
                2.52,
            ),
            ("beta", [60_000, 12_000, 0, 0], 0.84),
        ],
    );

    // A: alpha 0.96 + beta 0.42; B: alpha 1.56 + beta 0.42. Costliest first.
    let by_agent = get(
        &app,
        &key,
        &format!("tenant={tenant}&{RANGE}&group_by=agent"),
    )
    .await;
    assert_rows(
        &by_agent,
        &[
            (&b.to_string(), [630_000, 36_000, 600_000, 150_000], 1.98),
            (&a.to_string(), [630_000, 36_000, 600_000, 0], 1.38),
        ],
    );
    assert_eq!(by_agent["rows"][0]["name"], "b");

    // One agent; and `to` is exclusive: the session at day 3, 00:00 counts only past it.
    let only_a = get(&app, &key, &format!("tenant={tenant}&agent={a}&{RANGE}")).await;
    assert!(close(&only_a["total"]["cost_usd"], 1.38), "{only_a}");
    let later = format!("tenant={tenant}&from=2025-11-01T00:00:00Z&to=2025-11-04T00:00:00.001Z");
    let with_mystery = get(&app, &key, &format!("{later}&group_by=model")).await;
    assert_eq!(
        with_mystery["unpriced_models"],
        serde_json::json!(["mystery-1"])
    );
    assert!(
        close(&with_mystery["total"]["cost_usd"], 3.36),
        "{with_mystery}"
    );
    assert_eq!(with_mystery["total"]["input_tokens"], 2_260_000);

    // Without a range: the last 30 days, which hold none of it.
    let recent = get(&app, &key, &format!("tenant={tenant}")).await;
    assert_eq!(recent["rows"], serde_json::json!([]), "{recent}");
}

async fn a_new_price_table_reprices_past_usage(p: Profile) {
    let app = spawn_with_prices(TestDb::new(p).await, PRICES).await;
    let (tenant, _) = seed(&app).await;
    let key = app.operator_key("read", None).await;
    let before = get(
        &app,
        &key,
        &format!("tenant={tenant}&{RANGE}&group_by=model"),
    )
    .await;
    assert!(close(&before["total"]["cost_usd"], 3.36), "{before}");

    // alpha's input doubles (1.2M more tokens at +1/M) and mystery gets a price.
    let db = app.stop().await;
    let repriced = format!(
        "{}\n[models.mystery]\ninput = 0.5\noutput = 0.0\ncache_read = 0.0\ncache_write = 0.0\n",
        PRICES.replacen("input = 1.0", "input = 2.0", 1)
    );
    let app = spawn_with_prices(db, &repriced).await;
    let after = get(
        &app,
        &key,
        &format!("tenant={tenant}&{RANGE}&group_by=model"),
    )
    .await;
    assert!(close(&after["rows"][0]["cost_usd"], 3.72), "{after}");
    assert!(close(&after["total"]["cost_usd"], 4.56), "{after}");
    let later = format!("tenant={tenant}&from=2025-11-01T00:00:00Z&to=2025-11-05T00:00:00Z");
    let all = get(&app, &key, &later).await;
    assert_eq!(all["unpriced_models"], serde_json::json!([]));
    assert!(close(&all["total"]["cost_usd"], 5.06), "{all}");
}

async fn a_tenant_bound_key_sees_only_its_tenants_usage(p: Profile) {
    let app = spawn_with_prices(TestDb::new(p).await, PRICES).await;
    let (acme, _) = seed(&app).await;
    let other = app.tenant("other").await.id;
    let o = app.agent(other, "o").await.agent.id;
    session(
        &app,
        other,
        o,
        DAY0_MS,
        vec![usage("beta", 100_000, 0, 0, 0)],
    )
    .await;

    let bound = app.operator_key("read", Some(other)).await;
    let own = get(&app, &bound, RANGE).await;
    assert!(close(&own["total"]["cost_usd"], 1.0), "{own}");
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/usage?tenant={acme}"),
        &bound,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another tenant's agent is simply not in this tenant's usage.
    let bound_acme = app.operator_key("read", Some(acme)).await;
    let (status, none) = call(
        &app,
        Method::GET,
        &format!("/api/usage?agent={o}&{RANGE}"),
        &bound_acme,
        None,
    )
    .await;
    assert_eq!(
        (status, &none["rows"]),
        (StatusCode::OK, &serde_json::json!([])),
        "{none}"
    );
    let global = app.operator_key("read", None).await;
    let unknown = TenantId::from_uuid(Uuid::now_v7());
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/usage?tenant={unknown}"),
        &global,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn bad_parameters_are_400s_naming_the_field(p: Profile) {
    let app = spawn_with_prices(TestDb::new(p).await, PRICES).await;
    let tenant = app.tenant("acme").await.id;
    let key = app.operator_key("read", None).await;
    let cases = [
        ("group_by=week".to_owned(), "group_by"),
        ("from=yesterday".to_owned(), "from"),
        ("to=2026-13-01T00:00:00Z".to_owned(), "to"),
        (
            "from=2025-11-02T00:00:00Z&to=2025-11-01T00:00:00Z".to_owned(),
            "from",
        ),
        ("agent=nobody".to_owned(), "agent"),
    ];
    for (query, field) in cases {
        let path = format!("/api/usage?tenant={tenant}&{query}");
        let (status, body) = call(&app, Method::GET, &path, &key, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{query}: {body}"
        );
    }
    for path in ["/api/usage", "/api/usage?tenant=acme"] {
        let (status, body) = call(&app, Method::GET, path, &key, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body["error"]["details"]["fields"]["tenant"].is_string(),
            "{body}"
        );
    }
}

async fn the_cli_prints_the_usage_table(p: Profile) {
    let app = spawn_with_prices(TestDb::new(p).await, PRICES).await;
    let (tenant, _) = seed(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("prices.toml");
    std::fs::write(&file, PRICES).expect("write");
    let (tenant, file) = (tenant.to_string(), file.to_str().expect("path").to_owned());
    let args = [
        "--prices",
        &file,
        "usage",
        "--tenant",
        &tenant,
        "--group-by",
        "model",
        "--from",
        "2025-11-01T00:00:00Z",
        "--to",
        "2025-11-04T00:00:00.001Z",
    ];
    let out = nexus(&app.db, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1..],
        [
            "MODEL               INPUT  OUTPUT  CACHE_READ  CACHE_WRITE  COST_USD",
            "alpha-2026-01-01  1200000   60000     1200000       150000  2.520000",
            "beta                60000   12000           0            0  0.840000",
            "mystery-1         1000000       0           0            0  0.000000",
            "TOTAL             2260000   72000     1200000       150000  3.360000",
            "unpriced models (cost 0): mystery-1",
        ],
        "{text}"
    );
    // Without the file, the built-in table, which prices none of these.
    let out = nexus(&app.db, &args[2..]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unpriced models (cost 0): alpha-2026-01-01, beta, mystery-1"),
        "{text}"
    );
    let bad = nexus(
        &app.db,
        &[
            "--prices",
            "/nonexistent.toml",
            "usage",
            "--tenant",
            &tenant,
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("prices file"));
}
