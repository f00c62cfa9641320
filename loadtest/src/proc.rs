//! Child processes the tool starts (a Nexus node, the Socket.IO peer): where
//! their programs live, their output, their shutdown, and the `/proc`
//! readings taken of them (resident memory and CPU time).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::oneshot;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The workspace root (this crate lives in `<root>/loadtest`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// One reading of a process: resident set and CPU seconds (user + system).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProcSample {
    pub rss_bytes: u64,
    pub cpu_s: f64,
}

pub fn sample(pid: u32) -> Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is the process alive?)"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(ProcSample {
        rss_bytes: parse_vm_rss_kb(&status).context("no VmRSS in /proc status")? * 1024,
        cpu_s: parse_cpu_ticks(&stat).context("unreadable /proc stat")? as f64 / TICKS_PER_S,
    })
}

/// `VmRSS:   12345 kB` → 12345.
pub fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`. The command name
/// (field 2) may contain spaces, so fields are counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The last lines a child wrote, for error messages, and its WARN/ERROR lines
/// (counted, the first few kept: a busy node's INFO lines would push them out
/// of the tail).
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<Lines>>);

#[derive(Default)]
struct Lines {
    last: VecDeque<String>,
    problems: u64,
    first_problems: Vec<String>,
}

/// Problem lines kept per child.
const KEEP_PROBLEMS: usize = 10;

impl Tail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            if is_problem(&line) {
                lines.problems += 1;
                if lines.first_problems.len() < KEEP_PROBLEMS {
                    lines.first_problems.push(line.clone());
                }
            }
            if lines.last.len() == 20 {
                lines.last.pop_front();
            }
            lines.last.push_back(line);
        }
    }

    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|l| l.last.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// How many WARN/ERROR lines the child wrote, and the first few.
    pub fn problems(&self) -> (u64, Vec<String>) {
        self.0
            .lock()
            .map(|l| (l.problems, l.first_problems.clone()))
            .unwrap_or_default()
    }
}

/// A WARN or ERROR line of a JSON (or pretty) `tracing` log.
fn is_problem(line: &str) -> bool {
    [
        "\"level\":\"WARN\"",
        "\"level\":\"ERROR\"",
        " WARN ",
        " ERROR ",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// Reads `stream` line by line until it ends (so the child never blocks on a
/// full pipe), keeping a tail. The first line for which `find` returns a
/// value is sent on `found`.
pub fn drain<R, F>(stream: R, tail: Tail, find: F, found: Option<oneshot::Sender<String>>)
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Fn(&str) -> Option<String> + Send + 'static,
{
    tokio::spawn(async move {
        let mut found = found;
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if found.is_some()
                && let Some(value) = find(&line)
                && let Some(tx) = found.take()
            {
                let _ = tx.send(value);
            }
            tail.push(line);
        }
    });
}

/// SIGTERM, then up to 15 s for a clean exit, then SIGKILL.
pub async fn terminate(child: &mut Child) -> Result<()> {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => {
            child.kill().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_cpu() {
        let status = "Name:\tnexus\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss_kb(status), Some(12345));
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn keeps_problem_lines_past_the_tail() {
        let tail = Tail::default();
        tail.push(r#"{"level":"ERROR","fields":{"message":"boom"}}"#.into());
        for k in 0..30 {
            tail.push(format!(
                r#"{{"level":"INFO","fields":{{"message":"{k}"}}}}"#
            ));
        }
        tail.push(r#"{"level":"WARN","fields":{"message":"hm"}}"#.into());
        let (count, first) = tail.problems();
        assert_eq!(count, 2);
        assert!(first[0].contains("boom") && first[1].contains("hm"));
        assert!(!tail.text().contains("boom"));
    }
}
