//! Making a manager: [`ManagerBuilder`] gathers the engines, pools, store, clock and IDs, builds
//! the layer-0 state ([`crate::shared::Shared`]) and has the manager compose its parts.

use std::sync::Arc;

use crate::backend::Backend;
use crate::clock::{Clock, Ids};
use crate::config::{ManagerConfig, PoolConfig};
use crate::engines::{EngineSpec, MAX_ENGINES};
use crate::lease_store::LeaseStore;
use crate::manager::Manager;
use crate::policy::Policies;
use crate::shared::Shared;

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
            !engines.is_empty() && engines.len() <= MAX_ENGINES,
            "1 to {} engines",
            MAX_ENGINES
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
        let shared = Shared::new(
            self.cfg,
            self.engines,
            self.pools,
            self.store,
            self.clock.unwrap_or_else(Clock::system),
            self.ids,
        );
        Arc::new(Manager::compose(shared))
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
}
