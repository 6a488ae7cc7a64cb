//! One simulated run: a manager with one pool on a fresh in-memory engine, warmed to its
//! policy's first target, then the trace's clients, each at its time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, ready};
use tokio::time::Instant;
use warmpool_core::policy_logic::{
    ExhaustionAction, ExhaustionRequest, PoolSnapshot, SizingDecision,
};
use warmpool_core::{
    AcquireRequest, Clock, ExhaustionStrategy, Manager, ManagerConfig, Policies, SizingPolicy,
};
use warmpool_fake::{FakeBackend, FakeEngine, wall_origin};

use super::measure::{Cost, Outcome, Sample, Served, Tally};
use super::{Candidate, Setup};

/// Longest the pool gets to reach its first target before the trace starts.
const WARM_UP: Duration = Duration::from_secs(600);
/// Timeline samples per run, at most (the SVG draws them; the figures do not use them).
const SAMPLES: u64 = 720;

/// A policy whose answer is awaited on this thread, blocking it: the paused clock of a
/// current-thread runtime only moves when the runtime has nothing to do, so while a policy
/// decides, no simulated time passes, however long the plugin host takes in real time. The
/// plugin host still bounds every call by its deadline.
struct Frozen<P: ?Sized>(Arc<P>);

impl SizingPolicy for Frozen<dyn SizingPolicy> {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        ready(futures_executor::block_on(self.0.decide(s))).boxed()
    }
    fn name(&self) -> String {
        self.0.name()
    }
}

impl ExhaustionStrategy for Frozen<dyn ExhaustionStrategy> {
    fn on_exhausted<'a>(
        &'a self,
        r: &'a ExhaustionRequest,
        s: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        ready(futures_executor::block_on(self.0.on_exhausted(r, s))).boxed()
    }
    fn name(&self) -> String {
        self.0.name()
    }
}

/// Run `acquires` (`(t_ms, hold_ms)`, in time order) against `candidate`.
pub(super) async fn run(acquires: &[(u64, u64)], setup: &Setup, candidate: &Candidate) -> Outcome {
    let engine = FakeEngine::new(Duration::ZERO, setup.seed);
    engine.state().create_spread = Some(setup.create);
    let backend = Arc::new(FakeBackend::attach(engine));
    let mcfg = ManagerConfig {
        max_containers: setup.max_containers,
        max_concurrent_creates: setup.max_concurrent_creates,
        ..ManagerConfig::default()
    };
    let policies = Policies {
        sizing: Arc::new(Frozen(candidate.sizing.clone())),
        exhaustion: Arc::new(Frozen(setup.exhaustion.clone())),
        health: None,
    };
    let name = setup.pool.name.clone();
    let m = Manager::builder(mcfg, backend)
        .pools(vec![(candidate.pool(&setup.pool), policies)])
        .clock(Clock::starting_at(wall_origin()))
        .seed(setup.seed)
        .build();
    m.start();
    // A daemon that has run a while: the pool at its policy's first target. A pool that cannot
    // get there in time starts the trace as it is; the figures show the cost either way.
    let _ = m.warm_up(&name, WARM_UP).await;
    let before = m.pool_stats(&name).expect("the pool under test exists");
    let t0 = Instant::now();

    let span = acquires
        .iter()
        .map(|&(t, hold)| t.saturating_add(hold))
        .max()
        .unwrap_or(0);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (m, name, done) = (m.clone(), name.clone(), done.clone());
        let every = Duration::from_millis((span / SAMPLES).max(1000));
        tokio::spawn(async move {
            let mut timeline = Vec::new();
            while !done.load(Ordering::Acquire) {
                if let Some(s) = m.pool_stats(&name) {
                    timeline.push(Sample {
                        t_s: t0.elapsed().as_secs_f64(),
                        leased: s.counts.leased,
                        ready: s.counts.ready,
                    });
                }
                tokio::time::sleep(every).await;
            }
            timeline
        })
    };

    let mut clients = Vec::with_capacity(acquires.len());
    for &(t_ms, hold_ms) in acquires {
        tokio::time::sleep_until(t0 + Duration::from_millis(t_ms)).await;
        let (m, pool) = (m.clone(), name.clone());
        clients.push(tokio::spawn(async move {
            let hold = Duration::from_millis(hold_ms);
            let start = Instant::now();
            let req = AcquireRequest {
                pool,
                // As long as the client holds it (the pool's max_ttl still caps it).
                ttl: Some(hold + Duration::from_secs(1)),
                wait: None,
                owner: None,
                tenant: None,
                engine_labels: Default::default(),
                setup: None,
                resources: None,
            };
            match m.acquire(req).await {
                Ok(lease) => {
                    let waited = start.elapsed();
                    tokio::time::sleep(hold).await;
                    // A lease past the pool's max_ttl has expired already; nothing to release.
                    let _ = m.release(&lease.lease_id);
                    Served::Lent {
                        waited,
                        cold: lease.source == "cold",
                    }
                }
                Err(_) => Served::Refused,
            }
        }));
    }
    let mut tally = Tally::default();
    for c in clients {
        // A client task panics only if the core does; that is a failed simulation.
        tally.add(c.await.expect("a simulated client panicked"));
    }
    let end = m.pool_stats(&name).expect("the pool under test exists");
    let span = t0.elapsed();
    done.store(true, Ordering::Release);
    let timeline = sampler.await.unwrap_or_default();
    let cost = Cost {
        idle_container_seconds: end.idle_container_seconds - before.idle_container_seconds,
        peak_containers: end.peak_containers,
        creates: end.creates.total - before.creates.total,
        create_failures: end.creates.failures - before.creates.failures,
    };
    tally.outcome(&candidate.label, cost, span, timeline)
}
