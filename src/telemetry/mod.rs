//! Logs (pretty or JSON, on stderr) and the Prometheus recorder; every metric's name
//! and meaning is in [`catalog`].

pub mod catalog;
mod journal;

pub use journal::init_service_logging;

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogFormat;

/// What `serve` logs when `RUST_LOG` is unset.
pub const SERVE_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber (`RUST_LOG` wins over `default_filter`).
/// Stdout stays free for command output.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE));
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process-wide Prometheus recorder; installed once, shared by every node
/// built in this process (tests build many). Installing it describes every metric of
/// the [`catalog`] and registers their zero series.
pub fn metrics_handle() -> Metrics {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Real histograms, not the default summaries: quantiles of summaries cannot be
        // added up over the nodes of a cluster.
        let builder = builder
            .set_buckets(catalog::BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours simply stays empty.
        if metrics::set_global_recorder(recorder).is_ok() {
            catalog::register();
        }
        handle
    });
    Metrics(handle.clone())
}

/// The recorder's handle, rendering every metric of the catalog.
#[derive(Clone)]
pub struct Metrics(PrometheusHandle);

impl Metrics {
    /// The Prometheus text page. A metric with no series yet (one labelled by tenant,
    /// before any tenant exists) is still listed, with its `# HELP` and `# TYPE`.
    pub fn render(&self) -> String {
        let mut page = self.0.render();
        for m in catalog::ALL {
            if !page.contains(&format!("# TYPE {} ", m.name)) {
                let _ = write!(
                    page,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n\n",
                    name = m.name,
                    help = m.help,
                    kind = m.kind.as_str()
                );
            }
        }
        page
    }

    /// Drains histogram samples into their buckets; called before each render.
    pub fn run_upkeep(&self) {
        self.0.run_upkeep();
    }
}
