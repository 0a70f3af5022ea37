//! The `tapedeck` binary.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = tapedeck_server::cli::Cli::parse();
    // A one-shot command shows its own progress; the server logs its events.
    let default = match cli.cmd {
        tapedeck_server::cli::Cmd::Serve { .. } => "tapedeck=info,tapedeck_server=info,warn",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAPEDECK_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    std::process::exit(tapedeck_server::cli::run(cli).await);
}
