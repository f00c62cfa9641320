//! Report pieces: latency summaries from an HdrHistogram, human tables and
//! the JSON file written with `--out`.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::pin::Pinning;

/// Latencies are recorded in microseconds, up to 10 minutes.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

/// Percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} ms",
            num(self.p50_ms),
            num(self.p90_ms),
            num(self.p99_ms),
            num(self.p999_ms),
            num(self.max_ms)
        )
    }
}

/// Records a latency in µs; values past the bounds saturate.
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// A number for a table: integers with thousands separators, small values
/// with two decimals.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 100.0 {
        let n = x.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (k, c) in digits.chars().enumerate() {
            if k > 0 && (digits.len() - k).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else {
        format!("{x:.2}")
    }
}

pub fn kib(bytes: f64) -> String {
    format!("{} KiB", num(bytes / 1024.0))
}

pub fn mib(bytes: f64) -> String {
    format!("{} MiB", num(bytes / 1024.0 / 1024.0))
}

/// Two aligned columns under a title.
pub fn table(title: &str, rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("\n{title}\n{}\n", "─".repeat(title.chars().count()));
    for (k, v) in rows {
        let pad = width - k.chars().count();
        out.push_str(&format!("  {k}{}  {v}\n", " ".repeat(pad)));
    }
    out
}

/// A Markdown table (used by `compare`, pasted into RESULTS.md as is).
pub fn markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

pub fn write_json<T: Serialize>(path: Option<&Path>, report: &T) -> Result<()> {
    std::io::Write::flush(&mut std::io::stdout())?;
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

/// Prints the pinning line and writes the JSON report with a `pinning` field
/// beside its own.
pub fn write_json_pinned<T: Serialize>(
    path: Option<&Path>,
    report: &T,
    pinning: &Pinning,
) -> Result<()> {
    println!("\npinning: {}", pinning.describe());
    let mut value = serde_json::to_value(report)?;
    if let Some(fields) = value.as_object_mut() {
        fields.insert("pinning".into(), serde_json::to_value(pinning)?);
    }
    write_json(path, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let mut h = histogram().unwrap();
        for us in 1..=1000 {
            record_us(&mut h, us * 10); // 0.01 … 10 ms
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max_ms - 10.0).abs() < 0.01, "{l:?}");
        record_us(&mut h, u64::MAX);
        assert!(Latency::from_histogram(&h).max_ms >= 600_000.0);
        assert_eq!(
            Latency::from_histogram(&histogram().unwrap()),
            Latency::default()
        );
    }

    #[test]
    fn formats_numbers_and_tables() {
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(-1500.0), "-1,500");
        assert_eq!(num(1.23456), "1.23");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(kib(10240.0), "10.00 KiB");
        let t = table("T", &[("a", "1".into()), ("long", "2".into())]);
        assert!(
            t.contains("  a     1\n") && t.contains("  long  2\n"),
            "{t}"
        );
        let m = markdown(&["x", "y"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(m, "| x | y |\n|---|---|\n| 1 | 2 |\n");
    }
}
