//! Finding session files: each configured glob expanded (`~/` is the home directory),
//! and each file judged finished — nothing written to it for the quiet period, or an
//! end marker beside it (`<file>.done`, e.g. touched by Claude Code's `SessionEnd`
//! hook) — or still being written.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::upload::Finished;

/// A glob and the format of the files it matches.
#[derive(Clone, Debug, Serialize)]
pub struct SessionGlob {
    pub glob: String,
    pub format: &'static str,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub finished: Vec<Finished>,
    /// Files still written to.
    pub active: u64,
    /// Paths the scan could not read, with why.
    pub errors: Vec<(String, String)>,
}

/// `~/…` with the home directory.
pub fn expand_home(pattern: &str) -> String {
    match (pattern.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => pattern.to_owned(),
    }
}

/// The directory a glob starts from: its longest leading part without wildcards.
pub fn base_dir(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        base.push(part);
    }
    base
}

pub fn scan(globs: &[SessionGlob], quiet: Duration, now: SystemTime) -> Scan {
    let mut out = Scan::default();
    for g in globs {
        let pattern = expand_home(&g.glob);
        let paths = match glob::glob(&pattern) {
            Ok(paths) => paths,
            Err(e) => {
                out.errors.push((g.glob.clone(), e.to_string()));
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(path) => judge(path, g.format, quiet, now, &mut out),
                Err(e) => out
                    .errors
                    .push((e.path().display().to_string(), e.error().to_string())),
            }
        }
    }
    out.finished.sort_by(|a, b| a.path.cmp(&b.path));
    out.finished.dedup_by(|a, b| a.path == b.path);
    out
}

fn judge(path: PathBuf, format: &'static str, quiet: Duration, now: SystemTime, out: &mut Scan) {
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return,
        Err(e) => {
            out.errors.push((path.display().to_string(), e.to_string()));
            return;
        }
    };
    let modified = meta.modified().unwrap_or(now);
    let quiet_since = now.duration_since(modified).unwrap_or_default() >= quiet;
    if quiet_since || marker(&path).exists() {
        out.finished.push(Finished {
            path,
            len: meta.len(),
            modified,
            format,
        });
    } else {
        out.active += 1;
    }
}

fn marker(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".done");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_or_marked_files_are_finished_and_the_rest_active() {
        let dir = tempfile::tempdir().expect("dir");
        let project = dir.path().join("p");
        std::fs::create_dir(&project).expect("mkdir");
        for name in ["a.jsonl", "b.jsonl", "c.jsonl", "notes.txt"] {
            std::fs::write(project.join(name), b"{}\n").expect("write");
        }
        std::fs::write(project.join("b.jsonl.done"), b"").expect("marker");
        let globs = [SessionGlob {
            glob: format!("{}/**/*.jsonl", dir.path().display()),
            format: "claude-code",
        }];
        let now = SystemTime::now();
        let scan_now = scan(&globs, Duration::from_secs(60), now);
        let names: Vec<_> = scan_now
            .finished
            .iter()
            .map(|f| f.path.file_name())
            .collect();
        assert_eq!(names, [Some("b.jsonl".as_ref())]);
        assert_eq!(scan_now.active, 2);
        let later = scan(
            &globs,
            Duration::from_secs(60),
            now + Duration::from_secs(61),
        );
        assert_eq!(later.finished.len(), 3);
        assert_eq!(later.active, 0);
    }

    #[test]
    fn the_base_of_a_glob_stops_at_its_first_wildcard() {
        assert_eq!(
            base_dir("/home/a/.claude/projects/**/*.jsonl"),
            PathBuf::from("/home/a/.claude/projects")
        );
        assert_eq!(base_dir("/srv/s?/x"), PathBuf::from("/srv"));
    }
}
