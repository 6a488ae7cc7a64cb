//! The manager: all pools, the lease table, the global cap, and the one cancellation token that
//! every task of the daemon runs under. The API layer talks to this type only.
//!
//! The manager holds the books of everything this daemon counts on the engine: each pool's
//! books (see [`crate::pool`]), the pools a reload removed until their last container is gone,
//! and the orphans (containers found on the engine that no pool accounts for, being removed).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::caps::GlobalCap;
use crate::clock::{Clock, Ids};
use crate::config::{ManagerConfig, PoolConfig};
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
}

/// Whether the engine answers, as the monitor loop last saw it.
#[derive(Debug, Default)]
pub(crate) struct EngineState {
    pub up: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

/// Containers on the engine that no pool accounts for (left by a crash, of a pool that is gone,
/// or found by the running sweep), counted against the cap until their removal succeeds.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    books: Mutex<BTreeMap<String, String>>,
}

impl Orphans {
    /// Count `key` (engine ID `id`); `false` if it is counted already.
    pub fn add(&self, key: &str, id: &str, cap: &GlobalCap) -> bool {
        let mut b = lock(&self.books);
        if b.contains_key(key) {
            return false;
        }
        if cap.reserve(1) == 0 {
            cap.force(1);
        }
        b.insert(key.into(), id.into());
        true
    }

    pub fn removed(&self, key: &str, cap: &GlobalCap) {
        if lock(&self.books).remove(key).is_some() {
            cap.release(1);
        }
    }

    pub fn known(&self) -> Vec<(String, String)> {
        lock(&self.books)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Container IDs the engine reported dead recently. A create answering after the death event
/// arrived checks here, so a container that died while its create was still answering is never
/// put in the pool.
const RECENT_DEATHS: usize = 1024;

/// All pools, the lease table, the global cap and every background task: what the API layer
/// talks to. Make one with [`Manager::builder`], then call [`Manager::start`].
pub struct Manager<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) cfg: ManagerConfig,
    /// Swapped whole by a config reload; readers take a snapshot.
    pub(crate) pools: ArcSwap<BTreeMap<String, Arc<Pool>>>,
    /// Pools a reload removed, kept until their books are empty (the sweep must know their
    /// containers, and their removals report to them).
    pub(crate) retired: Mutex<Vec<Arc<Pool>>>,
    pub(crate) orphans: Orphans,
    pub(crate) leases: LeaseTable,
    pub(crate) cap: GlobalCap,
    pub(crate) create_permits: Arc<Semaphore>,
    pub(crate) remove_permits: Arc<Semaphore>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Origin of the millisecond clock policies see.
    pub(crate) epoch: Instant,
    pub(crate) clock: Clock,
    pub(crate) ids: Ids,
    pub(crate) engine: EngineState,
    /// True once the startup sweep removed what an earlier run left; refill waits for it.
    pub(crate) swept: watch::Sender<bool>,
    pub(crate) events: tokio::sync::broadcast::Sender<Event>,
    /// Group commit of leases and the lendable set; `None`: nothing is persisted.
    pub(crate) group_commit: Option<GroupCommit>,
    pub(crate) deaths: Mutex<VecDeque<String>>,
}

/// Builds a [`Manager`]; the daemon uses the defaults, the simulation seeds the IDs and clock.
pub struct ManagerBuilder<B: Backend> {
    cfg: ManagerConfig,
    backend: Arc<B>,
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
        Arc::new(Manager {
            backend: self.backend,
            cap: GlobalCap::new(cfg.max_containers),
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
            engine: EngineState::default(),
            swept: watch::Sender::new(false),
            events: tokio::sync::broadcast::Sender::new(crate::events::CAPACITY),
            group_commit,
            deaths: Mutex::default(),
        })
    }
}

impl<B: Backend> Manager<B> {
    /// A builder for a manager of `cfg` on `backend`: no pools, no store, the system clock
    /// and random IDs until set.
    pub fn builder(cfg: ManagerConfig, backend: Arc<B>) -> ManagerBuilder<B> {
        ManagerBuilder {
            cfg,
            backend,
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

    /// Publish a lifecycle event (a no-op without subscribers).
    pub(crate) fn emit(
        &self,
        kind: &'static str,
        pool: &str,
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
            container: container.map(str::to_string),
            lease: lease.map(str::to_string),
            reason,
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

    /// The backend containers are made with.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
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

    /// Whether the engine answered the monitor's last ping (and startup cleanup is done).
    pub fn engine_up(&self) -> bool {
        self.engine.up.load(Ordering::Acquire)
    }

    /// Ready to serve: the engine answers and leftovers of an earlier run are dealt with.
    pub fn is_ready(&self) -> bool {
        self.engine_up() && *self.swept.borrow() && !self.cancel.is_cancelled()
    }

    /// Whether startup dealt with what an earlier run left (the sweep or the reconcile ran).
    pub fn reconciled(&self) -> bool {
        *self.swept.borrow()
    }

    /// The last engine error the monitor saw (kept after the engine recovers), or
    /// `not reached yet`.
    pub fn engine_error(&self) -> String {
        lock(&self.engine.last_error)
            .clone()
            .unwrap_or_else(|| "not reached yet".into())
    }

    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.load().get(name).cloned()
    }

    /// Stats of pool `name`; `None` if no pool serves under that name.
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        let pool = self.pool(name)?;
        Some(PoolStats::read(&pool, self.engine_up(), &self.cfg.breaker))
    }

    /// Stats of every serving pool, by name.
    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        self.pools()
            .values()
            .map(|p| PoolStats::read(p, self.engine_up(), &self.cfg.breaker))
            .collect()
    }

    /// Containers the global cap counts now, over all pools and orphans.
    pub fn containers_counted(&self) -> u32 {
        self.cap.used()
    }

    /// Every container this daemon accounts for now: (name, engine ID once known). For the
    /// running sweep, and for tests that compare the books with the engine.
    pub fn accounted(&self) -> Vec<(String, Option<String>)> {
        let mut v = Vec::new();
        for pool in self.all_pools() {
            let st = pool.lock();
            v.extend(
                st.known()
                    .map(|(k, id)| (k.to_string(), id.map(str::to_string))),
            );
        }
        v.extend(
            self.orphans
                .known()
                .into_iter()
                .map(|(k, id)| (k, Some(id))),
        );
        v
    }

    /// The engine reported `id` dead; remember it for creates still answering.
    pub(crate) fn note_death(&self, id: &str) {
        let mut d = lock(&self.deaths);
        if d.len() == RECENT_DEATHS {
            d.pop_front();
        }
        d.push_back(id.to_string());
    }

    pub(crate) fn died_recently(&self, id: &str) -> bool {
        lock(&self.deaths).iter().any(|d| d == id)
    }
}
