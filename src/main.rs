use clap::Parser;
use nexus::cli::{Cli, Command};
use nexus::telemetry;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One-shot commands stay quiet unless RUST_LOG asks: their stdout is machine-read.
    let default_filter = match cli.command {
        Command::Serve(_) => telemetry::SERVE_FILTER,
        _ => "warn",
    };
    telemetry::init_logging(cli.global.log_format, default_filter);
    match nexus::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
