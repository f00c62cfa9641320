//! `/metrics` on a fresh node (a `nexus serve` process of its own, so nothing another
//! test did is counted), and `deploy/` — the alert rules and the Grafana dashboard —
//! kept in step with it; in [`live`], the metrics moving with what happens.

mod live;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nexus::telemetry::catalog::{self, Kind};
use serde::Deserialize;
use serde_json::Value;

use crate::helpers::{Profile, TestDb, redis_url, secrets_key};
use crate::serve::start_with;
use crate::{both_profiles, cluster_profile};

both_profiles!(a_fresh_node_lists_every_metric_at_zero);
cluster_profile!(a_fresh_cluster_node_reports_redis_up);

/// One metric family of a scraped page.
#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    /// Each sample line's series (name and labels) and value.
    samples: Vec<(String, f64)>,
}

/// The page's families by name; a histogram's `_bucket`/`_sum`/`_count` samples go to
/// their family.
fn parse(page: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in page.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            families.entry(name.into()).or_default().help = Some(help.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and type");
            families.entry(name.into()).or_default().kind = Some(kind.into());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let name = series.split('{').next().expect("name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|base| {
                    families
                        .get(*base)
                        .is_some_and(|f| f.kind.as_deref() == Some("histogram"))
                })
                .unwrap_or(name);
            let value = value.parse().expect("a numeric value");
            families
                .entry(family.into())
                .or_default()
                .samples
                .push((series.into(), value));
        }
    }
    families
}

/// A fresh node's `/metrics`, and the node (still running).
async fn fresh_page(db: &TestDb, redis: Option<&str>) -> String {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut env = vec![("DATABASE_URL", db.url.as_str())];
    env.extend(secrets_key(&db.url).map(|k| ("NEXUS_SECRETS_KEY", k)));
    env.extend(redis.map(|url| ("REDIS_URL", url)));
    let node = start_with(cwd.path(), &env).await;
    let resp = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.expect("text");
    node.stop().await;
    page
}

/// Gauges that are not 0 on a fresh node: what the node just reached, and the scrape's
/// own connection.
const LIVE_AT_START: &[&str] = &[catalog::DEPENDENCY_UP, catalog::CONNECTIONS_OPEN];

async fn a_fresh_node_lists_every_metric_at_zero(p: Profile) {
    let db = TestDb::new(p).await;
    let page = fresh_page(&db, None).await;
    let families = parse(&page);
    for m in catalog::ALL {
        let f = families
            .get(m.name)
            .unwrap_or_else(|| panic!("{} missing:\n{page}", m.name));
        assert_eq!(f.help.as_deref(), Some(m.help), "{}'s HELP", m.name);
        assert_eq!(
            f.kind.as_deref(),
            Some(m.kind.as_str()),
            "{}'s TYPE",
            m.name
        );
        if m.labels.is_empty() {
            assert!(
                !f.samples.is_empty(),
                "{} has no zero series:\n{page}",
                m.name
            );
        }
        if LIVE_AT_START.contains(&m.name) {
            continue;
        }
        for (series, value) in &f.samples {
            let counted = m.kind != Kind::Histogram || series.contains("_count");
            assert!(
                !counted || *value == 0.0,
                "{series} is {value} on a fresh node"
            );
        }
    }
    let unlisted: Vec<_> = families
        .keys()
        .filter(|n| n.starts_with("nexus_") && catalog::find(n).is_none())
        .collect();
    assert!(unlisted.is_empty(), "not in the catalog: {unlisted:?}");
    let up = &families[catalog::DEPENDENCY_UP].samples;
    assert_eq!(
        up,
        &[(
            r#"nexus_dependency_up{dependency="database"}"#.to_owned(),
            1.0
        )]
    );
    // The labels Prometheus queries need exist before the first event.
    for series in [
        r#"nexus_ws_disconnects_total{reason="slow_consumer"}"#,
        r#"nexus_auth_failures_total{endpoint="token",reason="wrong_secret"}"#,
        r#"nexus_webhooks_total{source="slack",outcome="accepted"}"#,
    ] {
        assert!(
            page.lines().any(|l| l.starts_with(series)),
            "{series} missing"
        );
    }
    deploy_names_exist(&families);
    promtool_accepts_the_page(&page);
}

async fn a_fresh_cluster_node_reports_redis_up() {
    let db = TestDb::new(Profile::Postgres).await;
    let page = fresh_page(&db, Some(&redis_url())).await;
    let families = parse(&page);
    let up: BTreeSet<_> = families[catalog::DEPENDENCY_UP]
        .samples
        .iter()
        .map(|(s, v)| format!("{s} {v}"))
        .collect();
    assert_eq!(
        up,
        BTreeSet::from([
            r#"nexus_dependency_up{dependency="database"} 1"#.to_owned(),
            r#"nexus_dependency_up{dependency="redis"} 1"#.to_owned(),
        ])
    );
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `nexus_*` names in a PromQL expression or an annotation.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("nexus_") {
        let before = rest[..at].chars().next_back();
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(word.clone());
        }
        rest = &rest[at + word.len()..];
    }
    names
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Every metric the alert rules and the dashboard name is on a fresh node's page, with
/// its HELP text; every rule tells a tired operator what broke and what to do.
fn deploy_names_exist(families: &BTreeMap<String, Family>) {
    let rules =
        std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("alerts.yml");
    let rules: RuleFile = serde_yaml_ng::from_str(&rules).expect("alerts.yml parses");
    let mut used = Vec::new();
    let mut alerts = 0;
    for rule in rules.groups.iter().flat_map(|g| &g.rules) {
        alerts += 1;
        for key in ["summary", "description"] {
            let text = rule.annotations.get(key).map_or("", String::as_str);
            assert!(text.len() > 20, "{}: no {key}", rule.alert);
            used.extend(
                metric_names(text)
                    .into_iter()
                    .map(|n| (rule.alert.clone(), n)),
            );
        }
        assert!(
            rule.labels.contains_key("severity"),
            "{}: no severity",
            rule.alert
        );
        let names = metric_names(&rule.expr);
        assert!(
            !names.is_empty() || rule.expr.contains("up{"),
            "{}: {}",
            rule.alert,
            rule.expr
        );
        used.extend(names.into_iter().map(|n| (rule.alert.clone(), n)));
    }
    assert!(alerts >= 10, "alerts.yml has {alerts} rules");

    let dashboard =
        std::fs::read_to_string(deploy().join("grafana/nexus.json")).expect("nexus.json");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("nexus.json is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} queries",
        exprs.len()
    );
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "a dashboard query names no metric: {expr}"
        );
        used.extend(names.into_iter().map(|n| (format!("dashboard: {expr}"), n)));
    }
    for (whence, name) in used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| families.contains_key(*b)))
            .unwrap_or(&name);
        let family = families.get(base);
        assert!(
            family.is_some_and(|f| f.help.is_some()),
            "{whence} uses {name}, which a fresh node does not list with HELP"
        );
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// `promtool`, when installed. `.ci/run` installs it, so under CI it must be there.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but promtool is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: promtool is not installed; only the parse checks ran");
    }
    found
}

fn promtool_accepts_the_page(page: &str) {
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check rules` and the rules' own unit tests (`alerts.test.yml`: each
/// alert fires on the series it is meant for, and not on the others).
#[test]
fn promtool_accepts_the_rules_and_their_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = deploy().join("prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
