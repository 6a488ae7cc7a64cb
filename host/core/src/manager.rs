//! The manager: all pools, the lease table, the global cap, and the one cancellation token that
//! every task of the daemon runs under. The API layer talks to this type only.
//!
//! The manager holds the books of everything this daemon counts on the engine: each pool's
//! books (see [`crate::pool`]), the pools a reload removed until their last container is gone,
//! and the orphans (containers found on the engine that no pool accounts for, being removed).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Backend, LeaseSetup};
use crate::caps::{Caps, EngineIx};
use crate::clock::{Clock, Ids};
use crate::config::{ManagerConfig, PoolConfig};
use crate::counters::StateCounts;
use crate::engines::{Engine, EngineSpec, EngineStats, EngineView, bit};
use crate::events::Event;
use crate::group_commit::GroupCommit;
use crate::lease::LeaseTable;
use crate::lease_store::LeaseStore;
use crate::policy::Policies;
use crate::pool::Pool;
use crate::stats::PoolStats;
use crate::sync::lock;

/// An acquire as the API receives it.
#[derive(Debug, Clone, Default)]
pub struct AcquireRequest {
    /// Name of the pool to lease from.
    pub pool: String,
    /// Lease lifetime; `None`: the pool's `default_ttl`. Capped at the pool's `max_ttl`.
    pub ttl: Option<Duration>,
    /// The client's bound on waiting when the pool is dry.
    pub wait: Option<Duration>,
    /// Who holds the lease (a user, session or job id), free text; shown and persisted.
    pub owner: Option<String>,
    /// Only engines carrying all of these labels may serve it; empty: any engine.
    pub engine_labels: BTreeMap<String, String>,
    /// The lease's own environment, secrets, working directory and files, applied to the
    /// container before the acquire answers.
    pub setup: Option<Arc<LeaseSetup>>,
}

/// Containers on the engine that no pool accounts for (left by a crash, of a pool that is gone,
/// or found by the running sweep), counted against the cap until their removal succeeds.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    /// Name → (engine ID, engine).
    books: Mutex<BTreeMap<String, (String, EngineIx)>>,
}

impl Orphans {
    /// Count `key` (engine ID `id` on engine `e`); `false` if it is counted already.
    pub fn add(&self, key: &str, id: &str, e: EngineIx, caps: &Caps) -> bool {
        let mut b = lock(&self.books);
        if b.contains_key(key) {
            return false;
        }
        caps.count_found(e);
        b.insert(key.into(), (id.into(), e));
        true
    }

    pub fn removed(&self, key: &str, caps: &Caps) {
        if let Some((_, e)) = lock(&self.books).remove(key) {
            caps.release_on(e);
        }
    }

    /// Every orphan: (name, engine ID, engine).
    pub fn known(&self) -> Vec<(String, String, EngineIx)> {
        lock(&self.books)
            .iter()
            .map(|(k, (id, e))| (k.clone(), id.clone(), *e))
            .collect()
    }
}

/// Container IDs the engine reported dead recently. A create answering after the death event
/// arrived checks here, so a container that died while its create was still answering is never
/// put in the pool; so does every hand-out, and a new lease (see `open_lease`).
const RECENT_DEATHS: usize = 1024;

/// The last [`RECENT_DEATHS`] container IDs reported dead: a set for the look-up, which the
/// acquire path makes, and their order for forgetting the oldest.
#[derive(Default)]
pub(crate) struct RecentDeaths {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

/// All pools, the lease table, the global cap and every background task: what the API layer
/// talks to. Make one with [`Manager::builder`], then call [`Manager::start`].
pub struct Manager<B: Backend> {
    /// Every engine, fixed for the life of the process; an index names one everywhere.
    pub(crate) engines: Vec<Engine<B>>,
    pub(crate) cfg: ManagerConfig,
    /// Swapped whole by a config reload; readers take a snapshot.
    pub(crate) pools: ArcSwap<BTreeMap<String, Arc<Pool>>>,
    /// Pools a reload removed, kept until their books are empty (the sweep must know their
    /// containers, and their removals report to them).
    pub(crate) retired: Mutex<Vec<Arc<Pool>>>,
    pub(crate) orphans: Orphans,
    pub(crate) leases: LeaseTable,
    pub(crate) cap: Caps,
    pub(crate) create_permits: Arc<Semaphore>,
    pub(crate) remove_permits: Arc<Semaphore>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Origin of the millisecond clock policies see.
    pub(crate) epoch: Instant,
    pub(crate) clock: Clock,
    pub(crate) ids: Ids,
    /// True once the startup sweep removed what an earlier run left; refill waits for it.
    pub(crate) swept: watch::Sender<bool>,
    pub(crate) events: tokio::sync::broadcast::Sender<Event>,
    /// Group commit of leases and the lendable set; `None`: nothing is persisted.
    pub(crate) group_commit: Option<GroupCommit>,
    pub(crate) deaths: Mutex<RecentDeaths>,
}

/// Builds a [`Manager`]; the daemon uses the defaults, the simulation seeds the IDs and clock.
pub struct ManagerBuilder<B: Backend> {
    cfg: ManagerConfig,
    engines: Vec<(EngineSpec, Arc<B>)>,
    pools: Vec<(PoolConfig, Policies)>,
    store: Option<Arc<dyn LeaseStore>>,
    clock: Option<Clock>,
    ids: Ids,
}

impl<B: Backend> ManagerBuilder<B> {
    /// The pools to serve, each with its policies (default: none).
    pub fn pools(mut self, pools: Vec<(PoolConfig, Policies)>) -> Self {
        self.pools = pools;
        self
    }

    /// Persist leases and the lendable set in `store` (see [`crate::lease_store`]); startup then
    /// reconciles with what the store and the engine hold instead of sweeping.
    pub fn store(mut self, store: Option<Arc<dyn LeaseStore>>) -> Self {
        self.store = store;
        self
    }

    /// The wall clock the manager stamps times with (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Drive these engines instead of the one given to [`Manager::builder`] (1 to
    /// [`crate::engines::MAX_ENGINES`]; names are unique, as the config checks).
    pub fn engines(mut self, engines: Vec<(EngineSpec, Arc<B>)>) -> Self {
        assert!(
            !engines.is_empty() && engines.len() <= crate::engines::MAX_ENGINES,
            "1 to {} engines",
            crate::engines::MAX_ENGINES
        );
        self.engines = engines;
        self
    }

    /// Draw lease IDs and container names from a seeded generator (replayable simulations).
    pub fn seed(mut self, seed: u64) -> Self {
        self.ids = Ids::seeded(seed);
        self
    }

    /// Make the manager. No task runs until [`Manager::start`].
    pub fn build(self) -> Arc<Manager<B>> {
        let cfg = self.cfg;
        let group_commit = self.store.map(|s| GroupCommit::new(s, cfg.commit_interval));
        let cancel = CancellationToken::new();
        let pools: BTreeMap<String, Arc<Pool>> = self
            .pools
            .into_iter()
            .map(|(pc, pol)| (pc.name.clone(), Pool::new(pc, pol, cancel.child_token())))
            .collect();
        let engine_caps: Vec<Option<u32>> =
            self.engines.iter().map(|(s, _)| s.max_containers).collect();
        Arc::new(Manager {
            engines: self
                .engines
                .into_iter()
                .map(|(spec, b)| Engine::new(spec, b))
                .collect(),
            cap: Caps::new(cfg.max_containers, &engine_caps),
            create_permits: Arc::new(Semaphore::new(cfg.max_concurrent_creates.max(1))),
            remove_permits: Arc::new(Semaphore::new(cfg.max_concurrent_removes.max(1))),
            cfg,
            pools: ArcSwap::from_pointee(pools),
            retired: Mutex::default(),
            orphans: Orphans::default(),
            leases: LeaseTable::default(),
            cancel,
            tracker: TaskTracker::new(),
            epoch: Instant::now(),
            clock: self.clock.unwrap_or_else(Clock::system),
            ids: self.ids,
            swept: watch::Sender::new(false),
            events: tokio::sync::broadcast::Sender::new(crate::events::CAPACITY),
            group_commit,
            deaths: Mutex::default(),
        })
    }
}

impl<B: Backend> Manager<B> {
    /// A builder for a manager of `cfg` on `backend` (one engine, named `default`, until
    /// [`ManagerBuilder::engines`]): no pools, no store, the system clock and random IDs until
    /// set.
    pub fn builder(cfg: ManagerConfig, backend: Arc<B>) -> ManagerBuilder<B> {
        ManagerBuilder {
            cfg,
            engines: vec![(EngineSpec::single(), backend)],
            pools: Vec::new(),
            store: None,
            clock: None,
            ids: Ids::Random,
        }
    }

    /// A manager of `pools` on `backend`, without a state store.
    pub fn new(
        cfg: ManagerConfig,
        pools: Vec<(PoolConfig, Policies)>,
        backend: Arc<B>,
    ) -> Arc<Self> {
        Self::builder(cfg, backend).pools(pools).build()
    }

    /// A manager that persists leases and the lendable set in `store` (see [`crate::lease_store`]).
    pub fn with_store(
        cfg: ManagerConfig,
        pools: Vec<(PoolConfig, Policies)>,
        backend: Arc<B>,
        store: Option<Arc<dyn LeaseStore>>,
    ) -> Arc<Self> {
        Self::builder(cfg, backend)
            .pools(pools)
            .store(store)
            .build()
    }

    /// Subscribe to lifecycle events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publish a lifecycle event of a pool, about one of its containers if `container` names it.
    pub(crate) fn emit(
        &self,
        kind: &'static str,
        pool: &str,
        container: Option<(&str, EngineIx)>,
        lease: Option<&str>,
        reason: Option<String>,
    ) {
        let engine = container.map(|(_, e)| e);
        self.send_event(
            kind,
            pool,
            engine,
            container.map(|(id, _)| id),
            lease,
            reason,
        );
    }

    /// Publish that an engine went up or down (`pool` is `*`).
    pub(crate) fn emit_engine(&self, kind: &'static str, engine: EngineIx, reason: Option<String>) {
        self.send_event(kind, "*", Some(engine), None, None, reason);
    }

    /// Publish that a pool's create breaker opened on an engine.
    pub(crate) fn emit_breaker(&self, pool: &str, engine: EngineIx, reason: String) {
        self.send_event("breaker", pool, Some(engine), None, None, Some(reason));
    }

    fn send_event(
        &self,
        kind: &'static str,
        pool: &str,
        engine: Option<EngineIx>,
        container: Option<&str>,
        lease: Option<&str>,
        reason: Option<String>,
    ) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let _ = self.events.send(Event {
            at: crate::clock::rfc3339(self.clock.now()),
            kind,
            pool: pool.to_string(),
            engine: engine.map(|e| self.engine_name(e).to_string()),
            container: container.map(str::to_string),
            lease: lease.map(str::to_string),
            reason,
            missed: None,
        });
    }

    /// Publish an event that happened outside the core, e.g. a plugin reload.
    pub fn publish(&self, kind: &'static str, pool: &str, reason: String) {
        self.emit(kind, pool, None, None, Some(reason));
    }

    /// The token every task runs under; cancelling it starts shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The tracker every task runs on; other layers (the plugin watcher) spawn on it too, so
    /// shutdown waits for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The first engine's backend (the only one of a single-engine daemon).
    pub fn backend(&self) -> &Arc<B> {
        &self.engines[0].backend
    }

    /// Every engine's backend, in config order.
    pub fn backends(&self) -> impl Iterator<Item = (&str, &Arc<B>)> {
        self.engines
            .iter()
            .map(|e| (e.spec.name.as_str(), &e.backend))
    }

    /// Names of the serving pools, sorted (removed pools still draining are not listed).
    pub fn pool_names(&self) -> Vec<String> {
        self.pools.load().keys().cloned().collect()
    }

    /// A snapshot of the pools; a reload may swap the map after it is taken.
    pub(crate) fn pools(&self) -> Arc<BTreeMap<String, Arc<Pool>>> {
        self.pools.load_full()
    }

    /// The serving pools and the removed ones that still hold containers.
    pub(crate) fn all_pools(&self) -> Vec<Arc<Pool>> {
        let mut v: Vec<Arc<Pool>> = self.pools().values().cloned().collect();
        let mut retired = lock(&self.retired);
        retired.retain(|p| p.lock().total() > 0);
        v.extend(retired.iter().cloned());
        v
    }

    /// Whether at least one engine answered its monitor's last ping (after its startup cleanup).
    pub fn engine_up(&self) -> bool {
        self.engines.iter().any(Engine::is_up)
    }

    /// Engines that are up now, as a mask.
    pub(crate) fn up_mask(&self) -> u64 {
        self.engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_up())
            .fold(0, |m, (i, _)| m | bit(i))
    }

    /// Engines carrying every label of `want`, as a mask (all engines for no labels).
    pub(crate) fn matching(&self, want: &BTreeMap<String, String>) -> u64 {
        self.engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.matches(want))
            .fold(0, |m, (i, _)| m | bit(i))
    }

    /// What the placer sees of each engine for a create allowed on `mask`.
    pub(crate) fn engine_views(&self, mask: u64) -> Vec<EngineView> {
        self.engines
            .iter()
            .enumerate()
            .map(|(i, e)| EngineView {
                eligible: e.is_up() && mask & bit(i) != 0,
                image_present: None,
                create_p50_ms: e.create_p50(),
            })
            .collect()
    }

    /// The engine at `e`. Indexes come from the books, which only hold valid ones.
    pub(crate) fn engine(&self, e: EngineIx) -> &Engine<B> {
        &self.engines[e.min(self.engines.len() - 1)]
    }

    /// The backend of engine `e`.
    pub(crate) fn backend_of(&self, e: EngineIx) -> &B {
        &self.engine(e).backend
    }

    /// The engine named `name`.
    pub(crate) fn engine_named(&self, name: &str) -> Option<EngineIx> {
        self.engines.iter().position(|e| e.spec.name == name)
    }

    /// Every engine's name, in index order.
    pub fn engine_names(&self) -> Vec<&str> {
        self.engines.iter().map(|e| e.spec.name.as_str()).collect()
    }

    /// What the core knows of each engine, in config order.
    pub fn engine_stats(&self) -> Vec<EngineStats> {
        let mut counts = vec![StateCounts::default(); self.engines.len()];
        for pool in self.all_pools() {
            let st = pool.lock();
            for (e, c) in counts.iter_mut().enumerate() {
                let n = st.counts_on(e);
                c.creating += n.creating;
                c.ready += n.ready;
                c.leased += n.leased;
                c.resetting += n.resetting;
                c.removing += n.removing;
                c.unhealthy += n.unhealthy;
            }
        }
        for (_, _, e) in self.orphans.known() {
            if let Some(c) = counts.get_mut(e) {
                c.removing += 1;
            }
        }
        self.engines
            .iter()
            .zip(counts)
            .enumerate()
            .map(|(i, (e, containers))| EngineStats {
                name: e.spec.name.clone(),
                labels: e.spec.labels.clone(),
                up: e.is_up(),
                last_error: lock(&e.last_error).clone(),
                max_containers: e.spec.max_containers,
                counted: self.cap.used_on(i),
                containers,
                create_p50_ms: e.create_p50(),
            })
            .collect()
    }

    /// The name of engine `e`.
    pub fn engine_name(&self, e: EngineIx) -> &str {
        &self.engine(e).spec.name
    }

    /// Ready to serve: an engine answers and leftovers of an earlier run are dealt with.
    pub fn is_ready(&self) -> bool {
        self.engine_up() && *self.swept.borrow() && !self.cancel.is_cancelled()
    }

    /// Whether startup dealt with what an earlier run left (the sweep or the reconcile ran on
    /// at least one engine).
    pub fn reconciled(&self) -> bool {
        *self.swept.borrow()
    }

    /// Whether startup dealt with what an earlier run left on engine `name` (an unknown name
    /// means the first engine, as for lease records).
    pub fn engine_reconciled(&self, name: &str) -> bool {
        self.engine(self.engine_named(name).unwrap_or(0))
            .cleaned
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether startup dealt with what an earlier run left on every engine.
    pub fn all_reconciled(&self) -> bool {
        self.engines
            .iter()
            .all(|e| e.cleaned.load(std::sync::atomic::Ordering::Acquire))
    }

    /// The last engine error a monitor saw (kept after the engine recovers): a down engine's
    /// first, else the latest of any, else `not reached yet`.
    pub fn engine_error(&self) -> String {
        let down = self.engines.iter().find(|e| !e.is_up());
        for e in down.into_iter().chain(self.engines.iter()) {
            if let Some(err) = lock(&e.last_error).clone() {
                return if self.engines.len() == 1 {
                    err
                } else {
                    format!("engine {}: {err}", e.spec.name)
                };
            }
        }
        "not reached yet".into()
    }

    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.load().get(name).cloned()
    }

    /// Stats of pool `name`; `None` if no pool serves under that name.
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        let pool = self.pool(name)?;
        Some(PoolStats::read(
            &pool,
            self.engine_up(),
            &self.cfg.breaker,
            &self.engine_names(),
        ))
    }

    /// Stats of every serving pool, by name.
    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        let names = self.engine_names();
        self.pools()
            .values()
            .map(|p| PoolStats::read(p, self.engine_up(), &self.cfg.breaker, &names))
            .collect()
    }

    /// Containers the global cap counts now, over all pools and orphans.
    pub fn containers_counted(&self) -> u32 {
        self.cap.used()
    }

    /// Every container this daemon accounts for now: (name, engine ID once known). For the
    /// running sweep, and for tests that compare the books with the engine.
    pub fn accounted(&self) -> Vec<(String, Option<String>)> {
        self.accounted_engines()
            .into_iter()
            .map(|(k, id, _)| (k, id))
            .collect()
    }

    /// [`Manager::accounted`], with each container's engine.
    pub(crate) fn accounted_engines(&self) -> Vec<(String, Option<String>, EngineIx)> {
        let mut v = Vec::new();
        for pool in self.all_pools() {
            let st = pool.lock();
            v.extend(
                st.known()
                    .map(|(k, id, e)| (k.to_string(), id.map(str::to_string), e)),
            );
        }
        v.extend(
            self.orphans
                .known()
                .into_iter()
                .map(|(k, id, e)| (k, Some(id), e)),
        );
        v
    }

    /// The engine reported `id` dead; remember it for creates still answering.
    pub(crate) fn note_death(&self, id: &str) {
        let mut d = lock(&self.deaths);
        if !d.ids.insert(id.to_string()) {
            return; // a second notice (die, then the sweep)
        }
        d.order.push_back(id.to_string());
        if d.order.len() > RECENT_DEATHS
            && let Some(old) = d.order.pop_front()
        {
            d.ids.remove(&old);
        }
    }

    pub(crate) fn died_recently(&self, id: &str) -> bool {
        lock(&self.deaths).ids.contains(id)
    }
}
