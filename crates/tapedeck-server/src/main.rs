//! The `tapedeck` binary.

use clap::Parser;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAPEDECK_LOG")
                .unwrap_or_else(|_| "tapedeck=info,tapedeck_server=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = tapedeck_server::cli::Cli::parse();
    std::process::exit(tapedeck_server::cli::run(cli).await);
}
