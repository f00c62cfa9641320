//! `nexus worker status` (from the state file: no running worker needed) and
//! `nexus worker check` (can the configured paths, the state file and the node be
//! reached), as text for people or JSON (`--json`) for scripts.

use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::client::{Credentials, Node};
use super::scan::{self, SessionGlob};
use super::state::State;

pub fn status(state_file: &Path, json_out: bool) -> anyhow::Result<()> {
    let state = State::load(state_file)?;
    let failing: Vec<Value> = state
        .failing
        .iter()
        .map(|(path, f)| {
            json!({"path": path, "session_id": f.session_id, "attempts": f.attempts,
                   "parked": f.parked, "next_at": f.next_at, "last_error": f.last_error})
        })
        .collect();
    let report = json!({
        "state_file": state_file.display().to_string(),
        "started_at": state.started_at,
        "last_scan_at": state.last_scan_at,
        "last_upload_at": state.last_upload_at,
        "backfill_done": state.backfill_done,
        "sessions_seen": state.sessions_seen,
        "uploaded": state.uploaded.len(),
        "queued": state.queued,
        "waiting": state.waiting,
        "failing": state.failing.values().filter(|f| !f.parked).count(),
        "parked": state.parked().count(),
        "consecutive_failures": state.consecutive_failures,
        "last_error": state.last_error,
        "failures": failing,
    });
    if json_out {
        println!("{report}");
        return Ok(());
    }
    let ago = |t: Option<DateTime<Utc>>| match t {
        Some(t) => format!("{} ({} ago)", t.format("%Y-%m-%d %H:%M:%S UTC"), since(t)),
        None => "never".to_owned(),
    };
    println!("state file   {}", state_file.display());
    println!("started      {}", ago(state.started_at));
    println!("last scan    {}", ago(state.last_scan_at));
    println!("last upload  {}", ago(state.last_upload_at));
    println!(
        "sessions     {} seen, {} uploaded, {} queued, {} still being written{}",
        state.sessions_seen,
        state.uploaded.len(),
        state.queued,
        state.waiting,
        if state.backfill_done {
            ""
        } else {
            " (backfill not done)"
        }
    );
    println!(
        "failures     {} failing, {} parked, {} in a row",
        report["failing"], report["parked"], state.consecutive_failures
    );
    for (path, f) in &state.failing {
        let what = if f.parked { "parked " } else { "failing" };
        println!(
            "  {what} {path} ({} attempts): {}",
            f.attempts, f.last_error
        );
    }
    Ok(())
}

fn since(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[derive(Serialize)]
struct PathReport {
    glob: String,
    base: String,
    readable: bool,
    error: Option<String>,
    sessions: usize,
    finished: usize,
    active: u64,
    unreadable: Vec<String>,
}

/// Prints what the worker can reach; false when something it needs cannot be.
pub async fn check(
    globs: &[SessionGlob],
    quiet: Duration,
    state_file: &Path,
    node: Option<(String, Credentials)>,
    json_out: bool,
) -> anyhow::Result<bool> {
    let paths: Vec<PathReport> = globs.iter().map(|g| check_glob(g, quiet)).collect();
    let state = check_state_file(state_file);
    let node = match node {
        Some((url, credentials)) => Some(check_node(&url, credentials).await),
        None => None,
    };
    let ok = paths.iter().all(|p| p.readable && p.unreadable.is_empty())
        && state.is_ok()
        && node.as_ref().is_none_or(|n| n.1.is_ok());
    if json_out {
        println!(
            "{}",
            json!({
                "ok": ok,
                "paths": paths,
                "state_file": {"path": state_file.display().to_string(), "writable": state.is_ok(), "error": state.as_ref().err()},
                "node": node.as_ref().map(|(url, r)| json!({"url": url, "ok": r.is_ok(), "error": r.as_ref().err()})),
            })
        );
        return Ok(ok);
    }
    for p in &paths {
        println!("sessions     {}", p.glob);
        match &p.error {
            None => println!(
                "  {}: readable, {} sessions ({} finished, {} being written)",
                p.base, p.sessions, p.finished, p.active
            ),
            Some(e) => println!("  {}: NOT READABLE: {e}", p.base),
        }
        for u in &p.unreadable {
            println!("  cannot read {u}");
        }
    }
    match &state {
        Ok(()) => println!("state file   {}: writable", state_file.display()),
        Err(e) => println!("state file   {}: NOT WRITABLE: {e}", state_file.display()),
    }
    match &node {
        Some((url, Ok(()))) => println!("node         {url}: reachable, credentials accepted"),
        Some((url, Err(e))) => println!("node         {url}: {e}"),
        None => println!("node         not checked (no --url)"),
    }
    Ok(ok)
}

fn check_glob(g: &SessionGlob, quiet: Duration) -> PathReport {
    let pattern = scan::expand_home(&g.glob);
    let base = scan::base_dir(&pattern);
    let error = std::fs::read_dir(&base).err().map(|e| e.to_string());
    let found = scan::scan(std::slice::from_ref(g), quiet, SystemTime::now());
    let unreadable: Vec<String> = found
        .errors
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .chain(found.finished.iter().filter_map(|f| {
            std::fs::File::open(&f.path)
                .err()
                .map(|e| format!("{}: {e}", f.key()))
        }))
        .collect();
    PathReport {
        glob: g.glob.clone(),
        base: base.display().to_string(),
        readable: error.is_none(),
        error,
        sessions: found.finished.len() + found.active as usize,
        finished: found.finished.len(),
        active: found.active,
        unreadable,
    }
}

/// Whether the state file's directory takes a new file (what every save needs).
fn check_state_file(path: &Path) -> Result<(), String> {
    let probe = path.with_extension("check");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())
}

async fn check_node(url: &str, credentials: Credentials) -> (String, Result<(), String>) {
    let result = match Node::new(url, credentials, Duration::from_secs(10)) {
        Ok(node) => node.token().await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    (url.to_owned(), result)
}
