//! The simulated world: the engine, the store, the daemon (one incarnation at a time), the
//! client's model of its leases, and the step loop.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{
    BuiltinExhaustion, Clock, ContainerSpec, EngineSpec, Manager, ManagerConfig, Policies,
    PoolConfig, ReuseConfig,
};

use super::check::Checks;
use super::exercise::{Count, Exercise};
use super::restart::DaemonRef;
use super::{Failure, Outcome, take_panic};
use crate::fake::{FAKE_HOST, FakeBackend, FakeEngine, Faults};
use crate::fixtures;
use crate::store::MemoryStore;

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

/// One seed's simulation: the engine, the store, the current daemon and the client's model.
pub struct Sim {
    pub(crate) seed: u64,
    pub(crate) rng: fastrand::Rng,
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
    trace: VecDeque<String>,
    trace_all: bool,
    next_pool: u32,
}

/// Steps kept for a failure report.
const TRACE: usize = 80;

impl Sim {
    /// A world drawn from `seed` (engine, pools, limits) with its first daemon started;
    /// `trace_all` prints every step to stderr.
    pub fn new(seed: u64, trace_all: bool) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let engine = FakeEngine::new(Duration::from_millis(rng.u64(50..800)), seed ^ 0x9e37);
        // Most seeds drive one engine; the rest two or three, some with a cap of their own.
        let n_engines = match rng.u32(0..10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let mut engines = vec![engine];
        let mut engine_specs = vec![EngineSpec::single()];
        for i in 1..n_engines {
            let name = format!("e{i}");
            engines.push(FakeEngine::with_prefix(
                Duration::from_millis(rng.u64(50..800)),
                seed ^ (0x9e37 + i as u64),
                &format!("fake-{name}"),
            ));
            engine_specs.push(EngineSpec {
                name,
                labels: Default::default(),
                max_containers: rng.bool().then(|| rng.u32(1..6)),
            });
        }
        let store = Arc::new(MemoryStore::default());
        let persist = rng.f64() < 0.7;
        let mut pools = Vec::new();
        for i in 0..rng.usize(1..=2) {
            pools.push(random_pool(&mut rng, &format!("p{i}")));
        }
        let min_sum: u32 = pools.iter().map(|(p, _)| p.min_ready).sum();
        let mcfg = ManagerConfig {
            max_containers: min_sum.max(2) + rng.u32(0..8),
            max_concurrent_creates: rng.usize(1..=4),
            max_concurrent_removes: rng.usize(1..=8),
            keep_on_shutdown: persist && rng.bool(),
            ..ManagerConfig::default()
        };
        let backends: Vec<Arc<FakeBackend>> = engines
            .iter()
            .map(|e| Arc::new(FakeBackend::attach(e.clone())))
            .collect();
        let t0 = Instant::now();
        let manager = build(
            &mcfg,
            &pools,
            &engine_specs,
            &backends,
            persist.then(|| store.clone()),
            seed,
            0,
            t0,
        );
        let mut sim = Self {
            seed,
            rng,
            engines,
            engine_specs,
            store,
            persist,
            mcfg,
            pools,
            backends,
            manager,
            incarnation: 0,
            model: Arc::default(),
            checks: Checks::default(),
            out: Outcome {
                seed,
                digest: 0xcbf2_9ce4_8422_2325,
                ..Outcome::default()
            },
            ex: Exercise::default(),
            foreign: Vec::new(),
            daemon: Arc::default(),
            step: 0,
            t0,
            trace: VecDeque::new(),
            trace_all,
            next_pool: 2,
        };
        sim.note(format!(
            "start: persist {} keep {} max_containers {} creates {} pools {} engines {}",
            sim.persist,
            sim.mcfg.keep_on_shutdown,
            sim.mcfg.max_containers,
            sim.mcfg.max_concurrent_creates,
            sim.describe_pools(),
            sim.engine_specs
                .iter()
                .map(|e| format!("{}[{:?}]", e.name, e.max_containers))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        sim.plant_foreign();
        sim.watch_breakers();
        *sim.daemon.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&sim.manager);
        sim.mark_start();
        sim.manager.start();
        sim
    }

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

    /// Start a new incarnation of the daemon on the same engine and store.
    pub(crate) fn start_incarnation(&mut self) {
        self.incarnation += 1;
        self.backends = self
            .engines
            .iter()
            .map(|e| Arc::new(FakeBackend::attach(e.clone())))
            .collect();
        self.manager = build(
            &self.mcfg,
            &self.pools,
            &self.engine_specs,
            &self.backends,
            self.persist.then(|| self.store.clone()),
            self.seed,
            self.incarnation,
            self.t0,
        );
        *self.daemon.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&self.manager);
        self.mark_start();
        self.checks.starts.push(Instant::now());
        self.manager.start();
    }

    /// A new pool name, for a reload that adds one.
    pub(crate) fn new_pool(&mut self) -> (PoolConfig, BuiltinExhaustion) {
        let name = format!("p{}", self.next_pool);
        self.next_pool += 1;
        random_pool(&mut self.rng, &name)
    }

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
        for e in &self.engines {
            let w = e.state();
            ex.add(Count::LostDeaths, w.lost_events);
            ex.add(Count::EndlessHangs, w.hangs_ended);
            ex.add(Count::ExecOverruns, w.overruns_ended);
            ex.add(Count::AgentDeaths, w.agent_faults[0]);
            ex.add(Count::AgentStalls, w.agent_faults[1]);
            ex.add(Count::AgentForged, w.agent_faults[2]);
            ex.add(Count::BreakerTrials, w.trials);
        }
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

    pub(crate) fn check_panic(&self) -> Result<(), Failure> {
        match take_panic() {
            Some(p) => Err(self.fail(format!("a task panicked: {p}"))),
            None => Ok(()),
        }
    }
}

/// The simulated daemon's wall clock: one timeline across incarnations, the engine's own, from
/// a fixed origin, so that what a restart reads back from the store means the same in every
/// replay.
fn sim_clock(t0: Instant) -> Clock {
    let wall: SystemTime = crate::fake::wall_origin() + Instant::now().duration_since(t0);
    Clock::starting_at(wall)
}

#[allow(clippy::too_many_arguments)]
fn build(
    mcfg: &ManagerConfig,
    pools: &[(PoolConfig, BuiltinExhaustion)],
    engines: &[EngineSpec],
    backends: &[Arc<FakeBackend>],
    store: Option<Arc<MemoryStore>>,
    seed: u64,
    incarnation: u64,
    t0: Instant,
) -> Arc<Manager<FakeBackend>> {
    let store: Option<Arc<dyn LeaseStore>> = store.map(|s| s as Arc<dyn LeaseStore>);
    Manager::builder(mcfg.clone(), backends[0].clone())
        .engines(
            engines
                .iter()
                .cloned()
                .zip(backends.iter().cloned())
                .collect(),
        )
        .pools(
            pools
                .iter()
                .map(|(p, e)| (p.clone(), policies(*e)))
                .collect(),
        )
        .store(store)
        .clock(sim_clock(t0))
        .seed(seed.wrapping_mul(31).wrapping_add(incarnation))
        .build()
}

impl Sim {
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

pub(crate) fn policies(e: BuiltinExhaustion) -> Policies {
    fixtures::policies(e)
}

fn random_pool(rng: &mut fastrand::Rng, name: &str) -> (PoolConfig, BuiltinExhaustion) {
    let min = rng.u32(0..=3);
    let max = min.max(1) + rng.u32(0..=2);
    let total = max + rng.u32(0..=3);
    let mut p = fixtures::pool(name, min, max, total);
    p.default_ttl = Duration::from_secs(rng.u64(5..600));
    p.max_ttl = p.default_ttl * 4;
    p.wait_timeout = Duration::from_millis(rng.u64(0..8_000));
    p.idle_timeout = Duration::from_secs(rng.u64(5..120));
    if rng.f64() < 0.2 {
        p.max_warm_age = Some(Duration::from_secs(rng.u64(20..300)));
    }
    if rng.f64() < 0.5 {
        p.reuse = Some(ReuseConfig {
            max_uses: rng.u32(2..6),
            reset: vec![vec!["clean".into(), "/work".into(), "/tmp".into()]],
            verify: vec![vec!["check-empty".into(), "/work".into(), "/tmp".into()]],
            timeout: Duration::from_secs(5),
            allowed_changes: vec![],
        });
    }
    let e = match rng.u32(0..3) {
        0 => BuiltinExhaustion::Wait,
        1 => BuiltinExhaustion::Fail,
        _ => BuiltinExhaustion::Cold,
    };
    (p, e)
}
