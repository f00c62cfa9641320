use std::path::{Path, PathBuf};

use super::*;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/` with its text, the catalog itself left out.
fn code() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files
        .into_iter()
        .filter(|p| !p.starts_with(root.join("src/telemetry/catalog")))
        .filter(|p| !p.ends_with("src/telemetry/catalog.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text)
        })
        .collect()
}

#[test]
fn names_are_unique_and_follow_the_prometheus_conventions() {
    let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "a metric is listed twice");
    for m in ALL {
        assert!(m.name.starts_with("nexus_"), "{}", m.name);
        assert!(
            m.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
        // Counters end in `_total`; nothing else does.
        assert_eq!(
            m.kind == Kind::Counter,
            m.name.ends_with("_total"),
            "{}",
            m.name
        );
        assert!(
            m.help.len() > 10 && !m.help.contains(['\n', '\\']),
            "{}",
            m.name
        );
    }
}

/// The code names metrics only through the constants above, so a name cannot drift
/// between the code, the README and `deploy/`.
#[test]
fn the_code_records_metrics_only_by_their_catalog_constants() {
    for (path, text) in code() {
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(mac) {
                let arg = text[at + mac.len()..].trim_start();
                assert!(
                    arg.starts_with("catalog::") || arg.starts_with("crate::telemetry::catalog::"),
                    "{}: `{mac}` must name its metric by a telemetry::catalog constant",
                    path.display()
                );
            }
        }
    }
}

/// And no metric is listed that nothing records (or registers, for the gauges and
/// histograms whose series their owners create).
#[test]
fn every_listed_metric_is_recorded() {
    let code = code();
    let catalog = include_str!("../catalog.rs");
    for line in catalog.lines() {
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let Some((ident, _)) = rest.split_once(": &str = \"nexus_") else {
            continue;
        };
        let used = format!("catalog::{ident}");
        assert!(
            code.iter().any(|(_, text)| text.contains(&used)),
            "{ident} is listed in the catalog but nothing records it"
        );
    }
}

/// The README's table is this catalog's (`NEXUS_BLESS=1` rewrites it).
#[test]
fn the_readme_lists_every_metric() {
    const BEGIN: &str = "<!-- metrics:begin (generated from src/telemetry/catalog.rs) -->\n";
    const END: &str = "<!-- metrics:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (head, rest) = readme
        .split_once(BEGIN)
        .expect("README has the metrics:begin marker");
    let (listed, tail) = rest
        .split_once(END)
        .expect("README has the metrics:end marker");
    let table = markdown_table();
    if listed != table && std::env::var_os("NEXUS_BLESS").is_some() {
        std::fs::write(&path, format!("{head}{BEGIN}{table}{END}{tail}")).expect("write");
        return;
    }
    assert_eq!(
        listed, table,
        "README's metric table is stale: run NEXUS_BLESS=1 cargo test --lib telemetry"
    );
}
