//! The deterministic fault simulation of the pool core.
//!
//! From a seed, a simulated daemon (the real [`warmpool_core::Manager`] on the in-memory engine
//! and store, under tokio's paused clock) serves random client operations (acquire, exec, files,
//! renew, release with and without reuse, scale overrides set and cleared, config reload) while
//! suspend and resume, with idle suspends) while
//! random faults hit it (see the fake engine's [`warmpool_fake::Faults`], the restarts of
//! `restart.rs` and README's "Guarantees"). After every step, and at the end, the daemon's
//! promises are checked (`check.rs`, `promises.rs`, `scale.rs`, and at each hand-out
//! `handout.rs`), and each run counts how much
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
mod hibernate;
mod promises;
mod resources;
mod restart;
mod scale;
mod start;
mod world;

pub use exercise::{Count, Exercise};

use std::cell::RefCell;
use std::time::Duration;

use warmpool_fake::Faults;
use world::End;
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

/// The step loop: a client step, a pause, the checks; then the settle and the end checks.
impl Sim {
    /// Run up to `steps` steps, checking the promises after each, then settle and check the
    /// end state; the first broken promise is returned as a [`Failure`].
    pub async fn run(&mut self, steps: usize) -> Result<Outcome, Failure> {
        while self.step < steps {
            self.step += 1;
            self.one_step().await;
            self.pause().await;
            self.check_step()?;
        }
        self.settle().await?;
        self.out.steps = self.step;
        self.out.virtual_time = self.t0.elapsed();
        let m = self.model();
        let (acquires, leases, reuses) = (m.acquires, m.leases, m.reuses);
        let (degraded, lent_failing) = (m.degraded, m.lent_while_failing);
        let runtime_missing = m.runtime_missing;
        drop(m);
        self.out.acquires = acquires;
        self.out.leases = leases;
        self.out.reuses = reuses;
        self.out.crashes = self.ex.get(Count::Crashes);
        self.out.restarts = self.ex.get(Count::Restarts);
        let mut ex = self.ex;
        ex.add(Count::Reuses, reuses);
        ex.add(Count::Degraded, degraded);
        ex.add(Count::LentWhileStoreFails, lent_failing);
        ex.add(Count::RuntimeMissing, runtime_missing);
        for e in &self.engines {
            let w = e.state();
            ex.add(Count::LostDeaths, w.lost_events);
            ex.add(Count::EndlessHangs, w.hangs_ended);
            ex.add(Count::ExecOverruns, w.overruns_ended);
            ex.add(Count::AgentDeaths, w.agent_faults[0]);
            ex.add(Count::AgentStalls, w.agent_faults[1]);
            ex.add(Count::AgentForged, w.agent_faults[2]);
            ex.add(Count::BreakerTrials, w.trials);
            ex.add(Count::ResizeFailures, w.updates[1]);
            ex.add(Count::LimitsRestored, w.updates[2]);
            ex.add(Count::RuntimePlaced, w.runtime_creates);
            ex.add(Count::HibernateFaults, w.hibernate_faults);
        }
        for (c, n) in self.hibernation_exercise() {
            ex.add(c, n);
        }
        let m = self.model();
        ex.add(Count::ResizedAcquires, m.resized_acquires);
        ex.add(Count::RelentRestored, m.relent_restored);
        ex.add(Count::Resizes, m.resizes);
        ex.add(Count::ResizeRefused, m.resize_refused);
        drop(m);
        self.out.exercise = ex;
        Ok(self.out.clone())
    }

    /// Let the world run a random while: mostly short, sometimes long.
    async fn pause(&mut self) {
        let ms = match self.rng.u32(0..10) {
            0..=5 => self.rng.u64(5..300),
            6..=8 => self.rng.u64(300..3_000),
            _ => self.rng.u64(3_000..60_000),
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Stop every fault, let the daemon recover, release everything, and check the end state.
    async fn settle(&mut self) -> Result<(), Failure> {
        self.note("settle: faults off".into());
        for e in &self.engines {
            let mut w = e.state();
            w.faults = Faults::default();
            w.down = false;
            w.fail_always = None;
            w.fail_next = 0;
        }
        self.store.set_failing(false);
        self.store
            .fail_load
            .store(false, std::sync::atomic::Ordering::Release);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            self.check_step()?;
        }
        let held: Vec<String> = self.model().held.keys().cloned().collect();
        for id in held {
            let _ = self.manager.release(&id);
            let c = self.model().held.remove(&id).map(|h| h.container);
            if let Some(c) = c {
                self.model().end(&id, &c, End::Released);
            }
        }
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            self.check_step()?;
        }
        self.check_end().await
    }
}
