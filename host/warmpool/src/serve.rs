//! `serve`: the command that runs the daemon ([`crate::daemon::Daemon`]: build, run, drain)
//! with its log on stderr.

use std::path::Path;
use std::process::ExitCode;

use tracing::error;
use tracing_subscriber::EnvFilter;

use crate::daemon::Daemon;

/// `warmpool serve`: run the daemon on this config until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let served = async {
        let mut daemon = Daemon::build(path).await?;
        let why = daemon.run().await;
        daemon.drain(why).await;
        anyhow::Ok(())
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
