//! Many agents at once: opened with bounded concurrency, in this process or,
//! past `per_process` sockets, in `worker` subprocesses (one process may hold
//! at most 20,000 open files here). Deliveries from all of them arrive on one
//! channel.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::agents::{self, Delivery};
use crate::target::Target;

/// What connecting produced, in this process or in one worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Connected {
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
}

impl Connected {
    /// Adds another shard's (or call's) result; the earliest error is kept.
    pub fn absorb(&mut self, other: &Connected) {
        self.connected += other.connected;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
    }
}

pub struct Fleet {
    pub rx: UnboundedReceiver<Delivery>,
    tx: UnboundedSender<Delivery>,
    pub status: Connected,
    /// Client processes holding sockets: this one plus its workers.
    pub processes: usize,
    /// From the first connect to the last `welcome`.
    pub elapsed: Duration,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<Child>,
}

impl Fleet {
    /// An empty fleet; [`Fleet::grow`] adds sockets.
    pub fn new() -> Fleet {
        let (tx, rx) = mpsc::unbounded_channel();
        Fleet {
            rx,
            tx,
            status: Connected::default(),
            processes: 1,
            elapsed: Duration::ZERO,
            tasks: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// Opens one socket per token (agent numbers continue from the sockets
    /// already held). Returns what this call connected and how long it took.
    pub async fn grow(
        &mut self,
        target: Target,
        ws: &str,
        tokens: &[String],
        concurrency: usize,
        per_process: usize,
    ) -> Result<(Connected, Duration)> {
        let started = Instant::now();
        let tried = self.status.connected + self.status.failed;
        let indexed: Vec<(u32, String)> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| ((tried + i) as u32, t.clone()))
            .collect();
        let per_process = per_process.max(1);
        let status = if self.workers.is_empty() && tried + tokens.len() <= per_process {
            let (tasks, status) =
                connect_here(target, ws, indexed, concurrency, self.tx.clone(), true).await;
            self.tasks.extend(tasks);
            status
        } else {
            self.grow_workers(target, ws, &indexed, concurrency, per_process)
                .await?
        };
        let took = started.elapsed();
        self.status.absorb(&status);
        self.elapsed += took;
        Ok((status, took))
    }

    async fn grow_workers(
        &mut self,
        target: Target,
        ws: &str,
        indexed: &[(u32, String)],
        concurrency: usize,
        per_process: usize,
    ) -> Result<Connected> {
        let mut ready = Vec::new();
        for chunk in indexed.chunks(per_process) {
            let (child, status_rx, task) =
                spawn_worker(target, ws, chunk, concurrency, self.tx.clone())
                    .await
                    .context("starting a worker process")?;
            self.workers.push(child);
            ready.push(status_rx);
            self.tasks.push(task);
        }
        self.processes = 1 + self.workers.len();
        let mut status = Connected::default();
        let limit = Duration::from_secs(60 + indexed.len() as u64 / 100);
        for rx in ready {
            let worker = tokio::time::timeout(limit, rx)
                .await
                .context("a worker did not finish connecting in time")?
                .context("a worker exited before reporting")?;
            status.absorb(&worker);
        }
        Ok(status)
    }

    /// Closes every socket (aborting readers, ending workers).
    pub async fn close(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for mut child in self.workers.drain(..) {
            let _ = child.kill().await;
        }
    }
}

/// Opens sockets in this process; each gets a reader task.
pub async fn connect_here(
    target: Target,
    ws: &str,
    agents: Vec<(u32, String)>,
    concurrency: usize,
    tx: UnboundedSender<Delivery>,
    progress: bool,
) -> (Vec<JoinHandle<()>>, Connected) {
    let bar = if progress {
        ProgressBar::new(agents.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("connecting to {}", target.name()));
    let mut opens = futures_util::stream::iter(agents)
        .map(|(idx, token)| async move {
            let opened =
                tokio::time::timeout(Duration::from_secs(30), agents::open(target, ws, &token))
                    .await;
            (idx, opened)
        })
        .buffer_unordered(concurrency.max(1));
    let mut tasks = Vec::new();
    let mut status = Connected::default();
    while let Some((idx, opened)) = opens.next().await {
        match opened {
            Ok(Ok(socket)) => {
                status.connected += 1;
                tasks.push(tokio::spawn(agents::read_loop(
                    target,
                    idx,
                    socket,
                    tx.clone(),
                )));
            }
            Ok(Err(e)) => {
                status.failed += 1;
                status.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(_) => {
                status.failed += 1;
                status
                    .first_error
                    .get_or_insert_with(|| "no welcome within 30 s".into());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    (tasks, status)
}

/// One agent handed to a worker on its stdin.
#[derive(Serialize, Deserialize)]
pub struct WorkerAgent {
    pub a: u32,
    pub t: String,
}

/// A delivery as a worker prints it on stdout.
#[derive(Serialize, Deserialize)]
pub struct WorkerDelivery {
    pub a: u32,
    pub i: u64,
    pub t: u64,
    pub r: u64,
}

type Spawned = (Child, oneshot::Receiver<Connected>, JoinHandle<()>);

async fn spawn_worker(
    target: Target,
    ws: &str,
    agents: &[(u32, String)],
    concurrency: usize,
    tx: UnboundedSender<Delivery>,
) -> Result<Spawned> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["worker", "--target", target.name(), "--ws", ws])
        .args(["--concurrency", &concurrency.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("no worker stdin")?;
    let mut input = String::new();
    for (a, t) in agents {
        input.push_str(&serde_json::to_string(&WorkerAgent {
            a: *a,
            t: t.clone(),
        })?);
        input.push('\n');
    }
    input.push('\n'); // an empty line ends the list; EOF later ends the worker
    stdin.write_all(input.as_bytes()).await?;
    stdin.flush().await?;
    let stdout = child.stdout.take().context("no worker stdout")?;
    let (status_tx, status_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let _keep_stdin_open = stdin;
        let mut lines = BufReader::new(stdout).lines();
        let mut status_tx = Some(status_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(st) = status_tx.take() {
                match serde_json::from_str::<Connected>(&line) {
                    Ok(c) => {
                        let _ = st.send(c);
                    }
                    Err(_) => status_tx = Some(st),
                }
                continue;
            }
            if let Ok(d) = serde_json::from_str::<WorkerDelivery>(&line) {
                let _ = tx.send(Delivery {
                    agent: d.a,
                    i: d.i,
                    t_ns: d.t,
                    recv_ns: d.r,
                });
            }
        }
    });
    Ok((child, status_rx, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_results_add_up_and_keep_the_first_error() {
        let mut total = Connected::default();
        let shard = |connected, failed, e: Option<&str>| Connected {
            connected,
            failed,
            first_error: e.map(str::to_owned),
        };
        total.absorb(&shard(15_000, 0, None));
        total.absorb(&shard(14_998, 2, Some("no welcome within 30 s")));
        total.absorb(&shard(14_999, 1, Some("refused")));
        assert_eq!((total.connected, total.failed), (44_997, 3));
        assert_eq!(total.first_error.as_deref(), Some("no welcome within 30 s"));
    }

    #[test]
    fn a_worker_delivery_line_reads_back() {
        let line = serde_json::to_string(&WorkerDelivery {
            a: 7,
            i: 42,
            t: 1,
            r: 2,
        })
        .unwrap();
        let back: WorkerDelivery = serde_json::from_str(&line).unwrap();
        assert_eq!((back.a, back.i, back.t, back.r), (7, 42, 1, 2));
    }
}
