//! The deterministic fault simulation of the pool core.
//!
//! From a seed, a simulated daemon (the real [`warmpool_core::Manager`] on the in-memory engine
//! and store, under tokio's paused clock) serves random client operations (acquire, exec, files,
//! renew, release with and without reuse, config reload) while random faults hit it (see the
//! fake engine's [`crate::fake::Faults`], the restarts of `restart.rs` and README's
//! "Guarantees"). After every step, and at the end, the daemon's promises are checked
//! (`check.rs`, `promises.rs`, and at each hand-out `handout.rs`), and each run counts how much
//! of every fault and check it exercised ([`Exercise`]).
//!
//! Everything that decides runs on one thread with seeded generators and the paused clock, so a
//! seed replays (`cargo run -p warmpool-testkit --bin sim -- --seed N`), except for tokio's own
//! choice among ready `select!` branches, which is seeded per process: a failure may need a few
//! replays.

mod check;
mod client;
mod exercise;
mod handout;
mod promises;
mod restart;
mod world;

pub use exercise::{Count, Exercise};

use std::cell::RefCell;
use std::time::Duration;

pub use world::Sim;

/// Steps one seed runs by default.
pub const STEPS: usize = 250;

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The seed that was run.
    pub seed: u64,
    /// Steps run.
    pub steps: usize,
    /// Acquires the clients made, answered or not.
    pub acquires: u64,
    /// Acquires that got a lease.
    pub leases: u64,
    /// Releases for reuse whose container was reused.
    pub reuses: u64,
    /// Daemons killed without warning (`kill -9`).
    pub crashes: u64,
    /// Graceful restarts (SIGTERM, then a new daemon).
    pub restarts: u64,
    /// Config reloads.
    pub reloads: u64,
    /// Fault changes made (a fault switched on or off, or all cleared).
    pub faults: u64,
    /// Time on the paused tokio clock from start to the end of the settle.
    pub virtual_time: Duration,
    /// How much of each fault and promise the run exercised.
    pub exercise: Exercise,
    /// A digest of every step as traced (operations, IDs, times): equal digests mean the
    /// same run.
    pub digest: u64,
}

/// A broken promise: the seed, the step, what broke, and the last steps that led there.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed that failed.
    pub seed: u64,
    /// The step at which a promise broke (0 for a panic); replay runs this many steps.
    pub step: usize,
    /// What broke.
    pub message: String,
    /// The last traced steps (at most 80 lines), oldest first.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed at step {}: {}",
            self.seed, self.step, self.message
        )?;
        writeln!(f, "last steps:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        write!(
            f,
            "replay: cargo run -p warmpool-testkit --bin sim -- --seed {} --steps {} --trace",
            self.seed, self.step
        )
    }
}

thread_local! {
    /// A panic anywhere on this thread (a task of the simulated daemon included): the runtime
    /// would swallow it, so the hook records it here for the simulation to report.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = format!("{info}");
            let recorded = PANIC
                .try_with(|p| {
                    let mut p = p.borrow_mut();
                    if p.is_none() {
                        *p = Some(msg.clone());
                    }
                })
                .is_ok();
            if !recorded || std::env::var_os("WARMPOOL_SIM_LOUD").is_some() {
                prev(info);
            }
        }));
    });
}

pub(crate) fn take_panic() -> Option<String> {
    PANIC.with(|p| p.borrow_mut().take())
}

/// Run one seed for `steps` steps on a fresh current-thread runtime with paused time.
/// `trace` prints every step as it happens.
pub fn run(seed: u64, steps: usize, trace: bool) -> Result<Outcome, Failure> {
    install_panic_hook();
    let _ = take_panic();
    // Time only: without an I/O driver, advancing the paused clock costs no system call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let mut sim = Sim::new(seed, trace);
            sim.run(steps).await
        })
    }));
    // Drop the runtime here so that tasks parked forever (a crashed daemon's) go with it.
    drop(rt);
    match result {
        Ok(r) => r,
        Err(_) => Err(Failure {
            seed,
            step: 0,
            message: format!(
                "panicked: {}",
                take_panic().unwrap_or_else(|| "(no message)".into())
            ),
            trace: vec!["(replay with --trace to see the steps)".into()],
        }),
    }
}
