//! CPU pinning (`--node-cpus`, `--client-cpus`): the servers the tool starts
//! run under `taskset -c NODE`, the tool itself (and the worker processes it
//! forks, which inherit its mask) on CLIENT, so a figure is one side's and
//! not the two fighting for the same cores.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// A taskset-style CPU list (`0`, `1,3`, `0-2,5`): sorted, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

/// Generous: a typo like `10000` fails here rather than in `taskset`.
const MAX_CPU: usize = 4096;

impl CpuList {
    /// Parses a list (for clap's `value_parser`).
    pub fn parse(text: &str) -> Result<CpuList, String> {
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (cpu(lo)?, cpu(hi)?),
                None => (cpu(part)?, cpu(part)?),
            };
            if lo > hi {
                return Err(format!("CPU range {part:?} runs backwards"));
            }
            cpus.extend(lo..=hi);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }

    /// Both lists' CPUs.
    pub fn union(&self, other: &CpuList) -> CpuList {
        let mut cpus = [self.0.as_slice(), other.0.as_slice()].concat();
        cpus.sort_unstable();
        cpus.dedup();
        CpuList(cpus)
    }
}

fn cpu(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= MAX_CPU => Ok(n),
        _ => Err(format!(
            "{text:?} is not a CPU number (a list reads like 0, 1,3 or 0-2)"
        )),
    }
}

/// Ranges, as `taskset -c` reads them: `0-2,5`.
impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut cpus = self.0.iter().copied().peekable();
        while let Some(lo) = cpus.next() {
            let mut hi = lo;
            while cpus.peek() == Some(&(hi + 1)) {
                hi += 1;
                cpus.next();
            }
            parts.push(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where the servers and the client run; `None`: wherever the kernel puts them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pinning {
    pub node_cpus: Option<CpuList>,
    pub client_cpus: Option<CpuList>,
}

impl Pinning {
    /// One line for the reports.
    pub fn describe(&self) -> String {
        let side = |cpus: &Option<CpuList>| match cpus {
            Some(c) => format!("CPU {c}"),
            None => "unpinned".into(),
        };
        format!(
            "server(s) {} · client {}",
            side(&self.node_cpus),
            side(&self.client_cpus)
        )
    }

    /// Where provisioning CLI runs go: on every pinned CPU (the node is idle
    /// then), so argon2 hashing is not squeezed onto the client's core.
    pub fn provisioning_cpus(&self) -> Option<CpuList> {
        match (&self.node_cpus, &self.client_cpus) {
            (Some(n), Some(c)) => Some(n.union(c)),
            (n, c) => n.clone().or_else(|| c.clone()),
        }
    }

    /// Pins every thread of this process to the client CPUs; processes it
    /// starts later inherit the mask (servers are re-pinned by [`command`]).
    pub fn pin_self(&self) -> Result<()> {
        let Some(cpus) = &self.client_cpus else {
            return Ok(());
        };
        let out = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", &cpus.to_string()])
            .arg(std::process::id().to_string())
            .output()
            .context("running taskset (util-linux) to pin the client")?;
        if !out.status.success() {
            bail!(
                "taskset -a -p -c {cpus} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// `program` as a command, under `taskset -c CPUS` when given (taskset execs
/// it, so the child's pid is the program's own).
pub fn command(
    program: impl AsRef<std::ffi::OsStr>,
    cpus: Option<&CpuList>,
) -> tokio::process::Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.arg("-c").arg(cpus.to_string()).arg(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_taskset_lists() {
        assert_eq!(CpuList::parse("0").unwrap().0, vec![0]);
        assert_eq!(CpuList::parse("3,1-2, 1").unwrap().0, vec![1, 2, 3]);
        assert_eq!(CpuList::parse("0-2,5").unwrap().to_string(), "0-2,5");
        assert_eq!(CpuList::parse("5,0,1").unwrap().to_string(), "0-1,5");
        for bad in ["", "a", "2-1", "1,", "-1", "99999"] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn provisioning_uses_every_pinned_cpu() {
        let list = |s| Some(CpuList::parse(s).unwrap());
        let both = Pinning {
            node_cpus: list("0"),
            client_cpus: list("1"),
        };
        assert_eq!(both.provisioning_cpus(), list("0-1"));
        assert_eq!(both.describe(), "server(s) CPU 0 · client CPU 1");
        let none = Pinning::default();
        assert_eq!(none.provisioning_cpus(), None);
        assert_eq!(none.describe(), "server(s) unpinned · client unpinned");
        assert_eq!(
            serde_json::to_value(&both).unwrap(),
            serde_json::json!({"node_cpus": "0", "client_cpus": "1"})
        );
    }
}
