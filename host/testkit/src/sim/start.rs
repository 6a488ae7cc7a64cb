//! How a world starts, from its seed, and each daemon in it: the engines, pools, limits and
//! store drawn; another `host_id`'s containers planted beside; the engines' breaker probe; and
//! the manager each incarnation runs, on one wall clock across them all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{
    BuiltinExhaustion, Clock, EngineSpec, Manager, ManagerConfig, Policies, PoolConfig, ReuseConfig,
};
use warmpool_fake::{FakeBackend, FakeEngine, MemoryStore};

use super::Outcome;
use super::exercise::{Count, Exercise};
use super::world::{Checks, Sim};
use crate::fixtures;

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
        let mut rres = fastrand::Rng::with_seed(seed ^ 0x7e50_u64);
        for (p, _) in &mut pools {
            super::resources::limits(&mut rres, p);
        }
        runtimes(seed, &engines, &engine_specs, &mut pools);
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
            rres,
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
            hib: Default::default(),
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
            scales: Default::default(),
            scale_restore_due: false,
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
                .zip(&sim.engines)
                .map(|(e, f)| format!(
                    "{}[{:?}{}]",
                    e.name,
                    e.max_containers,
                    if f.state().runtimes.has("runsc") {
                        " runsc"
                    } else {
                        ""
                    }
                ))
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
        let mut p = random_pool(&mut self.rng, &name);
        super::resources::limits(&mut self.rres, &mut p.0);
        p
    }

    /// Now and then, another daemon (`host_id`) keeps containers on the first engine, for a
    /// pool of the same name and spec: this one must never list, lend or touch them.
    pub(crate) fn plant_foreign(&mut self) {
        if self.rng.f64() >= 0.3 {
            return;
        }
        self.ex.add(Count::ForeignHosts, 1);
        let spec = self.pools[0].0.spec.clone();
        let pool = self.pools[0].0.name.clone();
        for i in 0..self.rng.u32(1..=2) {
            let id = self.engines[0].plant(
                "another-host",
                &format!("warmpool-{pool}-other{i}"),
                &pool,
                &spec,
            );
            self.foreign.push(id);
        }
    }

    /// The engines ask the current daemon whether a pool's breaker on them is open.
    pub(crate) fn watch_breakers(&self) {
        for (i, e) in self.engines.iter().enumerate() {
            let name = self.engine_specs[i].name.clone();
            let daemon = self.daemon.clone();
            *e.breaker_open.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Box::new(move |pool: &str| {
                    let d = daemon.lock().unwrap_or_else(|p| p.into_inner()).upgrade();
                    d.and_then(|m| m.pool_stats(pool))
                        .and_then(|s| s.creates.breakers.get(&name).map(|b| b.open))
                        .unwrap_or(false)
                }));
        }
    }

    /// The time the current daemon started.
    pub(crate) fn mark_start(&self) {
        let mut m = self.model();
        m.started_at = Some(Instant::now());
        m.start_specs = self
            .pools
            .iter()
            .map(|(p, _)| (p.name.clone(), p.spec.clone()))
            .collect();
    }
}

/// The simulated daemon's wall clock: one timeline across incarnations, the engine's own, from
/// a fixed origin, so that what a restart reads back from the store means the same in every
/// replay.
fn sim_clock(t0: Instant) -> Clock {
    let wall: SystemTime = warmpool_fake::wall_origin() + Instant::now().duration_since(t0);
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

/// In most seeds with several engines, some (not all) of them register gVisor's `runsc`, and
/// the first pool runs under it: placement must keep its containers off the others (the fake
/// records a create that reaches an engine without the runtime as a broken promise), and while
/// every engine having it is down its acquires are answered 503. Only engines without a cap of
/// their own get the runtime, so the pool can still reach its target. Drawn from a generator
/// of its own, so the rest of each seed's world is drawn as before.
fn runtimes(
    seed: u64,
    engines: &[Arc<FakeEngine>],
    specs: &[EngineSpec],
    pools: &mut [(PoolConfig, BuiltinExhaustion)],
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x7275_6e73_6300);
    let uncapped: Vec<usize> = (0..engines.len())
        .filter(|&i| specs[i].max_containers.is_none())
        .collect();
    if engines.len() < 2 || uncapped.is_empty() || rng.f64() >= 0.7 {
        return;
    }
    let mut with: Vec<usize> = uncapped.iter().copied().filter(|_| rng.bool()).collect();
    if with.is_empty() {
        with.push(uncapped[rng.usize(0..uncapped.len())]);
    }
    if with.len() == engines.len() {
        with.pop();
    }
    for i in with {
        engines[i].state().runtimes.names.push("runsc".into());
    }
    pools[0].0.spec.runtime = Some("runsc".into());
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
    // Some pools suspend their idle leases on their own.
    if rng.f64() < 0.3 {
        p.hibernation.suspend_after_idle = Some(Duration::from_secs(rng.u64(5..60)));
    }
    let e = match rng.u32(0..3) {
        0 => BuiltinExhaustion::Wait,
        1 => BuiltinExhaustion::Fail,
        _ => BuiltinExhaustion::Cold,
    };
    (p, e)
}
