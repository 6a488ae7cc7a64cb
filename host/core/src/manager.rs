//! The manager: all pools, the lease table, the global caps, and the one cancellation token that
//! every task of the daemon runs under. The API layer talks to this type only.

use std::collections::{BTreeMap, HashMap};

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::caps::GlobalCap;
use crate::config::{ManagerConfig, PoolConfig};
use crate::events::Event;
use crate::lease::Lease;
use crate::persist::Persister;
use crate::policy::Policies;
use crate::pool::Pool;
use crate::store::LeaseStore;

/// An acquire as the API receives it.
#[derive(Debug, Clone, Default)]
pub struct AcquireRequest {
    pub pool: String,
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

pub struct Manager<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) cfg: ManagerConfig,
    /// Swapped whole by a config reload; readers take a snapshot.
    pub(crate) pools: ArcSwap<BTreeMap<String, Arc<Pool>>>,
    pub(crate) leases: Mutex<HashMap<String, Lease>>,
    pub(crate) cap: GlobalCap,
    pub(crate) create_permits: Arc<Semaphore>,
    pub(crate) remove_permits: Arc<Semaphore>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Origin of the millisecond clock policies see.
    pub(crate) epoch: Instant,
    pub(crate) engine: EngineState,
    /// True once the startup sweep removed what an earlier run left; refill waits for it.
    pub(crate) swept: watch::Sender<bool>,
    pub(crate) events: tokio::sync::broadcast::Sender<Event>,
    /// Group commit of leases and the lendable set; `None`: nothing is persisted.
    pub(crate) persist: Option<Persister>,
}

impl<B: Backend> Manager<B> {
    pub fn new(
        cfg: ManagerConfig,
        pools: Vec<(PoolConfig, Policies)>,
        backend: Arc<B>,
    ) -> Arc<Self> {
        Self::with_store(cfg, pools, backend, None)
    }

    /// A manager that persists leases and the lendable set in `store` (see [`crate::store`]).
    /// At startup it reconciles with what the store and the engine hold instead of sweeping.
    pub fn with_store(
        cfg: ManagerConfig,
        pools: Vec<(PoolConfig, Policies)>,
        backend: Arc<B>,
        store: Option<Arc<dyn LeaseStore>>,
    ) -> Arc<Self> {
        let persist = store.map(|s| Persister::new(s, cfg.commit_interval));
        let cancel = CancellationToken::new();
        let pools: BTreeMap<String, Arc<Pool>> = pools
            .into_iter()
            .map(|(pc, pol)| (pc.name.clone(), Pool::new(pc, pol, cancel.child_token())))
            .collect();
        Arc::new(Self {
            backend,
            cap: GlobalCap::new(cfg.max_containers),
            create_permits: Arc::new(Semaphore::new(cfg.max_concurrent_creates.max(1))),
            remove_permits: Arc::new(Semaphore::new(cfg.max_concurrent_removes.max(1))),
            cfg,
            pools: ArcSwap::from_pointee(pools),
            leases: Mutex::new(HashMap::new()),
            cancel,
            tracker: TaskTracker::new(),
            epoch: Instant::now(),
            engine: EngineState::default(),
            swept: watch::Sender::new(false),
            events: tokio::sync::broadcast::Sender::new(crate::events::CAPACITY),
            persist,
        })
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
            at: crate::lease::rfc3339(SystemTime::now()),
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

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    pub fn pool_names(&self) -> Vec<String> {
        self.pools.load().keys().cloned().collect()
    }

    /// A snapshot of the pools; a reload may swap the map after it is taken.
    pub(crate) fn pools(&self) -> Arc<BTreeMap<String, Arc<Pool>>> {
        self.pools.load_full()
    }

    pub fn engine_up(&self) -> bool {
        self.engine.up.load(Ordering::Acquire)
    }

    /// Ready to serve: the engine answers and leftovers of an earlier run are gone.
    pub fn is_ready(&self) -> bool {
        self.engine_up() && *self.swept.borrow() && !self.cancel.is_cancelled()
    }

    pub fn engine_error(&self) -> String {
        lock(&self.engine.last_error)
            .clone()
            .unwrap_or_else(|| "not reached yet".into())
    }

    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.load().get(name).cloned()
    }
}

/// Lock a std mutex, entering it even if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
