//! The simulated world's state: the engines, the store, the current daemon (one incarnation at
//! a time), the client's model of its leases and what the checks carry from step to step; with
//! the helpers every part of the simulation uses (the step trace, failures, what the engines
//! hold). How it starts is in `start.rs`, its step loop in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use warmpool_core::lease_store::Persisted;
use warmpool_core::{
    BuiltinExhaustion, ContainerSpec, EngineSpec, Manager, ManagerConfig, PoolConfig, ScaleOverride,
};
use warmpool_fake::{FAKE_HOST, FakeBackend, FakeEngine, MemoryStore};

use super::exercise::Exercise;
use super::{Failure, Outcome, take_panic};

/// How a lease ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Open,
    /// Released for reuse, outcome not known yet.
    Resetting,
    ReusedOk,
    Released,
    /// Refused reuse, expired, lost to a crash, or found unknown.
    Gone,
}

#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub container: String,
}

/// What the client knows, shared with its tasks.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub held: BTreeMap<String, Held>,
    /// Every lease a container served, in order, and how each ended.
    pub history: BTreeMap<String, Vec<(String, End)>>,
    pub violations: Vec<String>,
    pub acquires: u64,
    pub leases: u64,
    pub reuses: u64,
    /// Acquires answered 503 by a degraded pool.
    pub degraded: u64,
    /// Of those, the ones answered so because no engine up had the pool's runtime.
    pub runtime_missing: u64,
    /// Hand-outs while the store failed.
    pub lent_while_failing: u64,
    /// Dead containers (their death maybe unreported) and how long they have been dead in
    /// healthy time (see `check.rs`).
    pub dead_healthy: BTreeMap<String, Duration>,
    /// Containers a lost store may let a restart lend again (see `restart.rs`).
    pub exempt: BTreeSet<String>,
    /// When the current daemon started, and the pools' specs it started with.
    pub started_at: Option<Instant>,
    pub start_specs: BTreeMap<String, ContainerSpec>,
    /// Leases handed out with limits of their own, checked on the engine.
    pub resized_acquires: u64,
    /// Hand-outs, with the pool's limits, of a container an earlier lease had resized.
    pub relent_restored: u64,
    /// `PATCH`es answered with the new limits.
    pub resizes: u64,
    /// Asks refused by the pool's bounds (each checked to deserve it).
    pub resize_refused: u64,
}

impl Model {
    pub fn end(&mut self, lease: &str, container: &str, end: End) {
        if let Some(h) = self.history.get_mut(container)
            && let Some(e) = h.iter_mut().rev().find(|(l, _)| l == lease)
        {
            e.1 = end;
        }
    }
}

/// What the checks of `check.rs` carry from one step to the next.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    /// Containers on the engine that the books do not hold, and for how long (healthy time).
    pub(crate) unaccounted: BTreeMap<String, Duration>,
    /// When the last check ran.
    pub(crate) last: Option<Instant>,
    /// What the store held when the daemon last crashed, until the next start reconciled.
    pub(crate) committed: Option<Persisted>,
    /// When daemons started (for the storm bound), and the acquires made (pool, when).
    pub(crate) starts: Vec<Instant>,
    pub(crate) acquires: Vec<(String, Instant)>,
}

impl Checks {
    /// The daemon crashed with `committed` in the store: checked once the next one reconciled.
    pub(crate) fn crashed(&mut self, committed: Persisted) {
        self.committed = Some(committed);
    }
}

/// The daemon the engines' breaker probe reads (the current one).
pub(crate) type DaemonRef = Arc<Mutex<std::sync::Weak<Manager<FakeBackend>>>>;

/// One seed's simulation: the engine, the store, the current daemon and the client's model.
pub struct Sim {
    pub(crate) seed: u64,
    pub(crate) rng: fastrand::Rng,
    /// The generator of lease resources' choices (`resources.rs`), apart from `rng`.
    pub(crate) rres: fastrand::Rng,
    /// The engines the daemon drives: one in most seeds, two or three in the rest.
    pub(crate) engines: Vec<Arc<FakeEngine>>,
    /// Their names, labels and caps, as the daemon is configured.
    pub(crate) engine_specs: Vec<EngineSpec>,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) persist: bool,
    pub(crate) mcfg: ManagerConfig,
    pub(crate) pools: Vec<(PoolConfig, BuiltinExhaustion)>,
    /// The current incarnation's connection to each engine.
    pub(crate) backends: Vec<Arc<FakeBackend>>,
    pub(crate) manager: Arc<Manager<FakeBackend>>,
    pub(crate) incarnation: u64,
    pub(crate) model: Arc<Mutex<Model>>,
    pub(crate) checks: Checks,
    /// The hibernation steps' state (`hibernate.rs`).
    pub(crate) hib: Hib,
    pub(crate) out: Outcome,
    /// Exercise counts the sim itself keeps (the rest are read from the engines and the
    /// model at the end).
    pub(crate) ex: Exercise,
    /// Containers of another `host_id` on the first engine.
    pub(crate) foreign: Vec<String>,
    /// The current daemon, for the engines' breaker probe.
    pub(crate) daemon: DaemonRef,
    pub(crate) step: usize,
    pub(crate) t0: Instant,
    pub(super) trace: VecDeque<String>,
    pub(super) trace_all: bool,
    pub(super) next_pool: u32,
    /// The scale overrides the clients were told each pool has (see `scale.rs`).
    pub(crate) scales: BTreeMap<String, ScaleOverride>,
    /// A restart should put back `scales`: counted once the next daemon reconciled.
    pub(crate) scale_restore_due: bool,
}

/// Steps kept for a failure report.
const TRACE: usize = 80;

impl Sim {
    pub(crate) fn describe_pools(&self) -> String {
        self.pools
            .iter()
            .map(|(p, e)| {
                format!(
                    "{}[{}/{}/{} {:?}{}]",
                    p.name,
                    p.min_ready,
                    p.max_ready,
                    p.max_total,
                    e,
                    if p.reuse.is_some() { " reuse" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(crate) fn note(&mut self, s: String) {
        let line = format!(
            "[{:>4}] t={:>8.1}s {s}",
            self.step,
            self.t0.elapsed().as_secs_f64()
        );
        if self.trace_all {
            eprintln!("{line}");
        }
        // FNV-1a over every line: the run's fingerprint.
        for b in line.bytes() {
            self.out.digest = (self.out.digest ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn fail(&self, message: String) -> Failure {
        Failure {
            seed: self.seed,
            step: self.step,
            message,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    pub(crate) fn check_panic(&self) -> Result<(), Failure> {
        match take_panic() {
            Some(p) => Err(self.fail(format!("a task panicked: {p}"))),
            None => Ok(()),
        }
    }

    /// Every container of this daemon's `host_id` on every engine: (engine index, ID, name).
    pub(crate) fn on_engines(&self) -> Vec<(usize, String, String)> {
        let mut v = Vec::new();
        for (i, e) in self.engines.iter().enumerate() {
            v.extend(
                e.state()
                    .containers
                    .values()
                    .filter(|c| c.host == FAKE_HOST)
                    .map(|c| (i, c.id.clone(), c.name.clone())),
            );
        }
        v
    }
}

/// What the hibernation steps (`hibernate.rs`) carry: leases the clients asked to suspend, leases found
/// suspended without being asked (idle), and the steps' outcomes (suspended, resumed, refused
/// for want of checkpoints).
#[derive(Debug, Default)]
pub(crate) struct Hib {
    pub(crate) asked: std::collections::BTreeSet<String>,
    pub(crate) idle: std::collections::BTreeSet<String>,
    pub(crate) counts: std::sync::Arc<std::sync::Mutex<[u64; 3]>>,
}
