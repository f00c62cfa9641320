//! `nexus usage`: a tenant's tokens and cost as an aligned table, the same report as
//! `GET /api/usage`, priced by `--prices` (or the built-in table).

use std::io::Write;

use chrono::DateTime;
use clap::Args;
use nexus_proto::{AgentId, TenantId};

use crate::admin::usage::{self, UsageQuery, UsageReport};
use crate::config::{Prices, Tokens};
use crate::store::{Store, UsageGroup};
use crate::time::{now_ms, rfc3339};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(long)]
    tenant: TenantId,
    /// Only this agent's sessions.
    #[arg(long)]
    agent: Option<AgentId>,
    /// Sessions started at or after this (RFC 3339); default 30 days before `--to`.
    #[arg(long, value_parser = instant)]
    from: Option<i64>,
    /// Sessions started before this (RFC 3339); default now.
    #[arg(long, value_parser = instant)]
    to: Option<i64>,
    /// `day`, `model` or `agent`.
    #[arg(long, default_value = "day")]
    group_by: UsageGroup,
}

fn instant(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub async fn usage(store: &Store, prices: &Prices, args: UsageArgs) -> anyhow::Result<()> {
    let query = UsageQuery {
        tenant: args.tenant,
        agent: args.agent,
        from: args.from,
        to: args.to,
        group_by: args.group_by,
    };
    let report = usage::usage(store, prices, &query, now_ms()).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(table(&report).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The report as text: a header line, the range, one line per group, the total, and
/// the unpriced models if any. Numbers are right-aligned.
pub fn table(r: &UsageReport) -> String {
    let head = [
        r.group_by.as_str(),
        "input",
        "output",
        "cache_read",
        "cache_write",
        "cost_usd",
    ];
    let mut lines: Vec<[String; 6]> = vec![head.map(|h| h.to_uppercase())];
    for row in &r.rows {
        let key = match &row.name {
            Some(name) => format!("{name} ({})", row.key),
            None => row.key.clone(),
        };
        lines.push(line(key, &row.tokens, row.cost_usd));
    }
    lines.push(line("TOTAL".into(), &r.total.tokens, r.total.cost_usd));
    let mut widths = [0; 6];
    for l in &lines {
        for (w, cell) in widths.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = format!(
        "usage from {} to {} (exclusive)\n",
        rfc3339(r.from),
        rfc3339(r.to)
    );
    for l in &lines {
        let mut cells = vec![format!("{:<w$}", l[0], w = widths[0])];
        cells.extend((1..6).map(|i| format!("{:>w$}", l[i], w = widths[i])));
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    if !r.unpriced_models.is_empty() {
        text.push_str(&format!(
            "unpriced models (cost 0): {}\n",
            r.unpriced_models.join(", ")
        ));
    }
    text
}

fn line(key: String, t: &Tokens, cost: f64) -> [String; 6] {
    [
        key,
        t.input_tokens.to_string(),
        t.output_tokens.to_string(),
        t.cache_read_tokens.to_string(),
        t.cache_write_tokens.to_string(),
        format!("{cost:.6}"),
    ]
}
