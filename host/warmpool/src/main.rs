//! The `warmpool` command: parses the command line and hands over to the library (see
//! `lib.rs` for where things live).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use warmpool::{client, interactive, scale, serve, validate, warm_up};

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
    /// Show the engines of a running daemon: state, containers, version, images.
    Engines(client::Conn),
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
        #[command(flatten)]
        setup: client::LeaseSetup,
    },
    /// Run a command in a leased container; exits with the command's exit code.
    Exec {
        #[command(flatten)]
        conn: client::Conn,
        /// The lease: its ID, or its lease token (`wpl.…`), which is then the bearer token.
        lease: String,
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Write stdout and stderr as they come, not at the end (exit code 128+N when killed
        /// by signal N, 124 when timed out).
        #[arg(long)]
        stream: bool,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// An interactive terminal in a leased container (`/bin/sh`, or the command after `--`);
    /// exits with its exit code.
    Shell {
        #[command(flatten)]
        conn: client::Conn,
        /// The lease: its ID, or its lease token (`wpl.…`), which is then the bearer token.
        lease: String,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Fill a pool to its target now and wait for it: a progress bar on a terminal, plain
    /// lines when piped.
    WarmUp {
        #[command(flatten)]
        conn: client::Conn,
        pool: String,
        /// Longest to wait, in milliseconds (the daemon caps it at 600 s; default 60 s).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// Override a pool's sizes at run time: `scale POOL N` keeps at least N ready; `--max M`
    /// keeps at most M ready; `--clear` goes back to the config's sizes. A size not given is
    /// the config's.
    #[command(group(ArgGroup::new("what").required(true).multiple(true).args(["min_ready", "max", "clear"])))]
    Scale {
        #[command(flatten)]
        conn: client::Conn,
        pool: String,
        /// min_ready: ready containers kept at least.
        min_ready: Option<u64>,
        /// max_ready: ready containers kept at most.
        #[arg(long)]
        max: Option<u64>,
        /// Clear the override.
        #[arg(long, conflicts_with_all = ["min_ready", "max"])]
        clear: bool,
    },
    /// End a lease; its container is destroyed.
    Release {
        #[command(flatten)]
        conn: client::Conn,
        /// The lease: its ID, or its lease token (`wpl.…`), which is then the bearer token.
        lease: String,
    },
    /// Policy plugins: check a component, or list a running daemon's.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component as the daemon would and print its answers on sample inputs.
    Check {
        file: PathBuf,
        #[arg(long)]
        world: warmpool_plugin_host::World,
        /// A plugin setting, KEY=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        config: Vec<(String, String)>,
    },
    /// List the plugins of a running daemon.
    List(client::Conn),
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
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
            Command::Validate { config } => validate::run(&config),
            Command::Status(conn) => client::status(&conn).await,
            Command::Engines(conn) => client::engines(&conn).await,
            Command::Acquire {
                conn,
                pool,
                ttl,
                wait_ms,
                setup,
            } => client::acquire(&conn, &pool, ttl, wait_ms, &setup).await,
            Command::Exec {
                conn,
                lease,
                timeout_ms,
                stream: true,
                cmd,
            } => {
                let (conn, lease) = conn.for_lease(&lease);
                interactive::exec_stream(&conn, &lease, cmd, timeout_ms).await
            }
            Command::Exec {
                conn,
                lease,
                timeout_ms,
                stream: false,
                cmd,
            } => {
                let (conn, lease) = conn.for_lease(&lease);
                client::exec(&conn, &lease, cmd, timeout_ms).await
            }
            Command::Shell { conn, lease, cmd } => {
                let (conn, lease) = conn.for_lease(&lease);
                interactive::shell(&conn, &lease, cmd).await
            }
            Command::Release { conn, lease } => {
                let (conn, lease) = conn.for_lease(&lease);
                client::release(&conn, &lease).await
            }
            Command::Scale {
                conn,
                pool,
                min_ready,
                max,
                clear,
            } => scale::run(&conn, &pool, min_ready, max, clear).await,
            Command::WarmUp {
                conn,
                pool,
                timeout_ms,
            } => warm_up::run(&conn, &pool, timeout_ms).await,
            Command::Plugin(PluginCommand::Check {
                file,
                world,
                config,
            }) => match warmpool_plugin_host::check::check(&file, world, &config).await {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            },
            Command::Plugin(PluginCommand::List(conn)) => client::plugins(&conn).await,
        }
    })
}
