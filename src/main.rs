use clap::Parser;
use nexus::cli::{Cli, Command};
use nexus::telemetry;
use nexus::worker::WorkerCmd;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One-shot commands stay quiet unless RUST_LOG asks: their stdout is machine-read.
    match cli.command {
        Command::Serve(_) => {
            telemetry::init_logging(cli.global.log_format, telemetry::SERVE_FILTER)
        }
        // The worker runs as a service: its log is its stdout (the journal's stream).
        Command::Worker(WorkerCmd::Run(_) | WorkerCmd::Pull(_)) => {
            telemetry::init_service_logging(cli.global.log_format, "info")
        }
        _ => telemetry::init_logging(cli.global.log_format, "warn"),
    }
    match nexus::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
