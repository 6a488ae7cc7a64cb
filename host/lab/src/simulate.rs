//! Simulate a trace against a sizing policy: the real pool core ([`warmpool_core::Manager`]) on
//! the in-memory engine of the tests and the fault simulation (`warmpool-fake`), under tokio's
//! paused clock, so a day of traffic runs in seconds and the same seed gives the same result.
//!
//! What is real: the manager, its refill, reaper, acquire path, caps and breakers, and the
//! policies themselves (a wasm plugin runs in the real plugin host, see [`Candidate`]). What is
//! simulated: the engine (creates take latencies drawn from [`CreateSpread`], nothing fails)
//! and the clients (each acquire of the trace comes at its time, holds its lease for its
//! `hold_ms`, then releases it). Health checks are not run.
//!
//! - `simulate/drive.rs`: one run, on its own paused runtime;
//! - `simulate/measure.rs`: what a run measured, and its summary per policy.

mod drive;
mod measure;

use std::sync::Arc;
use std::time::Duration;

use warmpool_core::{ExhaustionStrategy, PoolConfig, SizingPolicy};
pub use warmpool_fake::CreateSpread;

pub use measure::{Cost, Outcome, PluginRun, Sample, Served, Tally};

use crate::trace::Trace;

/// Everything about a simulated daemon but its sizing policy.
#[derive(Clone)]
pub struct Setup {
    /// The pool under test: sizes, timeouts and timings as configured.
    pub pool: PoolConfig,
    /// What an acquire does when the pool is dry (the pool's configured strategy).
    pub exhaustion: Arc<dyn ExhaustionStrategy>,
    /// How long creates take.
    pub create: CreateSpread,
    /// Drives the engine's create latencies and the manager's placement.
    pub seed: u64,
    /// The daemon's cap on containers over all pools.
    pub max_containers: u32,
    /// Creates running at once over all pools.
    pub max_concurrent_creates: usize,
}

impl Setup {
    /// A setup with the daemon's default caps.
    pub fn new(pool: PoolConfig, exhaustion: Arc<dyn ExhaustionStrategy>) -> Self {
        let d = warmpool_core::ManagerConfig::default();
        Self {
            pool,
            exhaustion,
            create: CreateSpread {
                p50: Duration::from_millis(400),
                p99: Duration::from_millis(1500),
            },
            seed: 1,
            max_containers: d.max_containers,
            max_concurrent_creates: d.max_concurrent_creates,
        }
    }
}

/// A sizing policy to try, and the name it is reported under.
#[derive(Clone)]
pub struct Candidate {
    /// How the report names it (`builtin:fixed`, a plugin's file, …).
    pub label: String,
    /// The policy. A wasm plugin's [`SizingPolicy`] (the plugin host's `WasmSizing`) answers on
    /// the plugin runtime; the simulation blocks its own thread on each answer, so the paused
    /// clock cannot move while a policy decides, and a plugin's speed never changes a result.
    pub sizing: Arc<dyn SizingPolicy>,
    /// Run with this `min_ready` instead of the pool's (raising `max_ready` and `max_total` to
    /// fit): how `builtin:fixed:N` sweeps static sizes.
    pub min_ready: Option<u32>,
}

impl Candidate {
    /// The pool as this candidate runs it.
    pub fn pool(&self, pool: &PoolConfig) -> PoolConfig {
        let mut p = pool.clone();
        if let Some(n) = self.min_ready {
            p.min_ready = n;
            p.max_ready = p.max_ready.max(n);
            p.max_total = p.max_total.max(p.max_ready);
        }
        p
    }
}

/// A simulation that could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No acquire of the trace asks the pool under test.
    #[error("no acquire of the trace asks pool {0:?} (the trace names: {1})")]
    NoAcquires(String, String),
    /// The runtime could not be built.
    #[error("cannot start the simulation's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Run `trace`'s acquires for `setup.pool` against `candidate`, in virtual time, on a thread of
/// its own (so it may be called from within an async runtime). Acquires for other pools are
/// left out.
pub fn simulate(trace: &Trace, setup: &Setup, candidate: &Candidate) -> Result<Outcome, SimError> {
    let acquires: Vec<(u64, u64)> = trace
        .acquires
        .iter()
        .filter(|a| a.pool == setup.pool.name)
        .map(|a| (a.t_ms, a.hold_ms))
        .collect();
    if acquires.is_empty() {
        let mut names: Vec<&str> = trace.acquires.iter().map(|a| a.pool.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(SimError::NoAcquires(
            setup.pool.name.clone(),
            names.join(", "),
        ));
    }
    let (setup, candidate) = (setup.clone(), candidate.clone());
    std::thread::scope(|s| {
        s.spawn(move || {
            // Time only: no I/O driver, so advancing the paused clock costs no system call.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .map_err(SimError::Runtime)?;
            let out = rt.block_on(drive::run(&acquires, &setup, &candidate));
            // The manager's loops are parked on the paused clock; they go with the runtime.
            drop(rt);
            Ok(out)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
