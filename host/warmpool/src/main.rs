//! # warmpool: the daemon and its CLI
//!
//! - `warmpool serve -c FILE` runs the daemon ([`serve`]).
//! - `warmpool validate -c FILE` checks a config and prints its pools.
//! - `status`, `acquire`, `exec`, `release` talk to a running daemon over HTTP ([`client`]).

mod client;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "warmpool",
    version,
    about = "Pools of pre-warmed Docker containers, leased over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        #[arg(short, long, env = "WARMPOOL_CONFIG", default_value = "warmpool.yaml")]
        config: PathBuf,
    },
    /// Check a config file: print every problem with its path, or a summary of the pools.
    Validate {
        #[arg(short, long, env = "WARMPOOL_CONFIG", default_value = "warmpool.yaml")]
        config: PathBuf,
    },
    /// Show the pools of a running daemon.
    Status(client::Conn),
    /// Lease a container from a pool; prints the lease as JSON.
    Acquire {
        #[command(flatten)]
        conn: client::Conn,
        pool: String,
        /// Lease time-to-live in seconds (capped at the pool's max_ttl).
        #[arg(long)]
        ttl: Option<u64>,
        /// Longest to wait when the pool is empty, in milliseconds.
        #[arg(long)]
        wait_ms: Option<u64>,
    },
    /// Run a command in a leased container; exits with the command's exit code.
    Exec {
        #[command(flatten)]
        conn: client::Conn,
        lease: String,
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// End a lease; its container is destroyed.
    Release {
        #[command(flatten)]
        conn: client::Conn,
        lease: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve::run(&config).await,
            Command::Validate { config } => serve::validate(&config),
            Command::Status(conn) => client::status(&conn).await,
            Command::Acquire {
                conn,
                pool,
                ttl,
                wait_ms,
            } => client::acquire(&conn, &pool, ttl, wait_ms).await,
            Command::Exec {
                conn,
                lease,
                timeout_ms,
                cmd,
            } => client::exec(&conn, &lease, cmd, timeout_ms).await,
            Command::Release { conn, lease } => client::release(&conn, &lease).await,
        }
    })
}
