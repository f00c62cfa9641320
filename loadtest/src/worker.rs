//! The hidden `worker` subcommand: holds up to `per_process` sockets for a
//! parent `nexus-loadtest`. Reads agents (JSON lines, then an empty line) on
//! stdin, prints one status line, then one line per delivery; exits when its
//! stdin closes (the parent ended).

use anyhow::Result;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::fleet::{WorkerAgent, WorkerDelivery, connect_here};
use crate::target::Target;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    target: Target,
    /// `ws://host:port` of the server.
    #[arg(long)]
    ws: String,
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

pub async fn run(args: WorkerArgs) -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut agents = Vec::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            break;
        }
        let agent: WorkerAgent = serde_json::from_str(&line)?;
        agents.push((agent.a, agent.t));
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_tasks, status) =
        connect_here(args.target, &args.ws, agents, args.concurrency, tx, false).await;
    let mut out = tokio::io::stdout();
    out.write_all(format!("{}\n", serde_json::to_string(&status)?).as_bytes())
        .await?;
    out.flush().await?;
    let forward = async {
        let mut buf = Vec::new();
        while let Some(d) = rx.recv().await {
            let mut next = Some(d);
            while let Some(d) = next {
                serde_json::to_writer(
                    &mut buf,
                    &WorkerDelivery {
                        a: d.agent,
                        i: d.i,
                        t: d.t_ns,
                        r: d.recv_ns,
                    },
                )?;
                buf.push(b'\n');
                next = rx.try_recv().ok();
            }
            out.write_all(&buf).await?;
            out.flush().await?;
            buf.clear();
        }
        anyhow::Ok(())
    };
    let parent_gone = async { while let Ok(Some(_)) = lines.next_line().await {} };
    tokio::select! {
        r = forward => r,
        _ = parent_gone => Ok(()),
    }
}
