//! The `warmpool-lab` command: parses the command line and hands over to the library's
//! subcommands (see `cli.rs` for where they live).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warmpool_lab::cli::{replay, simulate, trace};

#[derive(Parser)]
#[command(
    name = "warmpool-lab",
    version,
    about = "The policy lab of warmpool: acquire traces, and what sizing policies would do with them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Acquire traces for the policy lab (CSV `t_ms,pool,hold_ms`).
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Replay a trace against sizing policies in virtual time, on the real pool core and an
    /// in-memory engine: hit rate, waits, idle container-seconds, creates, per policy.
    Simulate(simulate::SimulateArgs),
    /// Drive a running daemon with a trace over HTTP (compressed by --speed) and measure what
    /// the simulation measures.
    Replay(replay::ReplayArgs),
}

#[derive(Subcommand)]
enum TraceCommand {
    /// A synthetic trace: poisson, diurnal, fanout, ramp or idle; the same for the same seed.
    Generate {
        #[arg(long)]
        shape: warmpool_lab::shapes::Shape,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The pool every acquire asks.
        #[arg(long, default_value = "default")]
        pool: String,
        /// Write here instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// The traffic a daemon served, from its audit log (`server.audit_log`).
    FromAudit {
        log: PathBuf,
        /// Only this pool's leases.
        #[arg(long)]
        pool: Option<String>,
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Trace(TraceCommand::Generate {
            shape,
            seed,
            pool,
            out,
        }) => trace::generate_cmd(shape, seed, &pool, out),
        Command::Trace(TraceCommand::FromAudit { log, pool, out }) => {
            trace::from_audit_cmd(&log, pool.as_deref(), out)
        }
        // The simulation starts runtimes of its own (paused clocks), which cannot start within
        // another: it runs outside any.
        Command::Simulate(args) => simulate::run(args),
        Command::Replay(args) => {
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(replay::run(args)),
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
