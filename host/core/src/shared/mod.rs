//! Layer 0: the manager's state, in parts. Each part keeps its fields private to its own file,
//! and its methods there are the only code that changes them:
//!
//! - [`Fleet`] (`fleet.rs`): the engines (up, cleaned, last error, create times), the caps,
//!   the orphans, the create and remove permits, the recent deaths;
//! - [`Books`] (`books.rs`): the map of serving pools and the retired ones (each pool's own
//!   books are in [`crate::pool`]);
//! - [`LeaseTable`] (`crate::lease`): the live leases;
//! - [`Persist`] (`persist.rs`): the group commit ([`crate::group_commit`]), or nothing;
//! - [`Events`] (`crate::events`): the event sender;
//! - [`Runtime`] (`runtime.rs`): settings, the cancellation token, the task tracker, clocks,
//!   IDs, and whether the startup cleanup ran.
//!
//! [`Shared`] bundles them for the parts above (one `Arc`, so a spawned task can hold it) and
//! offers the read-only views that combine several (stats, what the books account for). No
//! code here calls a layer above.

mod books;
mod fleet;
mod persist;
mod runtime;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub(crate) use books::Books;
pub(crate) use fleet::Fleet;
pub(crate) use persist::Persist;
pub(crate) use runtime::Runtime;

use crate::clock::{Clock, Ids};
use crate::config::{ManagerConfig, PoolConfig};
use crate::counters::StateCounts;
use crate::engines::{EngineSpec, EngineStats};
use crate::events::Events;
use crate::lease::LeaseTable;
use crate::lease_store::LeaseStore;
use crate::policy::Policies;
use crate::pool::Pool;
use crate::stats::PoolStats;

/// The layer-0 parts, shared by every part above (see the module doc).
pub(crate) struct Shared<B> {
    pub fleet: Fleet<B>,
    pub books: Books,
    pub leases: LeaseTable,
    pub persist: Persist,
    pub events: Events,
    pub rt: Runtime,
}

impl<B> Shared<B> {
    /// The state of a manager of `cfg` on `engines`, serving `pools`, persisting in `store`.
    pub fn new(
        cfg: ManagerConfig,
        engines: Vec<(EngineSpec, Arc<B>)>,
        pools: Vec<(PoolConfig, Policies)>,
        store: Option<Arc<dyn LeaseStore>>,
        clock: Clock,
        ids: Ids,
    ) -> Self {
        let persist = Persist::new(store, cfg.commit_interval);
        let cancel = CancellationToken::new();
        let pools: BTreeMap<String, Arc<Pool>> = pools
            .into_iter()
            .map(|(pc, pol)| (pc.name.clone(), Pool::new(pc, pol, cancel.child_token())))
            .collect();
        let names = engines.iter().map(|(s, _)| s.name.clone()).collect();
        Self {
            fleet: Fleet::new(engines, &cfg),
            books: Books::new(pools),
            leases: LeaseTable::default(),
            persist,
            events: Events::new(clock, names),
            rt: Runtime::new(cfg, cancel, clock, ids),
        }
    }

    // ---- read-only views over several parts --------------------------------------------------

    /// Ready to serve: an engine answers and leftovers of an earlier run are dealt with.
    pub fn is_ready(&self) -> bool {
        self.fleet.any_up() && self.rt.swept() && !self.rt.cancel().is_cancelled()
    }

    /// Stats of serving pool `name`.
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        let pool = self.books.get(name)?;
        Some(PoolStats::read(
            &pool,
            self.fleet.any_up(),
            self.runtime_missing(&pool),
            &self.rt.cfg().breaker,
            &self.fleet.names(),
        ))
    }

    /// Stats of every serving pool, by name.
    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        let names = self.fleet.names();
        self.books
            .serving()
            .values()
            .map(|p| {
                let missing = self.runtime_missing(p);
                PoolStats::read(
                    p,
                    self.fleet.any_up(),
                    missing,
                    &self.rt.cfg().breaker,
                    &names,
                )
            })
            .collect()
    }

    /// Why no engine that is up can run `pool`'s runtime, once that is known.
    fn runtime_missing(&self, pool: &Pool) -> Option<String> {
        self.fleet
            .runtime_missing(pool.cfg().spec.runtime.as_deref(), u64::MAX)
    }

    /// The `min_ready` the serving pools other than `name` run on (a scale override's where
    /// one holds), added up: what a new floor for `name` must fit beside.
    pub fn min_ready_of_others(&self, name: &str) -> u32 {
        self.books
            .serving()
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(_, p)| p.lock().sizes(&p.cfg()).0)
            .fold(0u32, u32::saturating_add)
    }

    /// What the core knows of each engine, in config order.
    pub fn engine_stats(&self) -> Vec<EngineStats> {
        let mut counts = vec![StateCounts::default(); self.fleet.len()];
        for pool in self.books.all() {
            let st = pool.lock();
            for (e, c) in counts.iter_mut().enumerate() {
                let n = st.counts_on(e);
                c.creating += n.creating;
                c.ready += n.ready;
                c.leased += n.leased;
                c.suspended += n.suspended;
                c.resetting += n.resetting;
                c.removing += n.removing;
                c.unhealthy += n.unhealthy;
            }
        }
        self.fleet.stats(counts)
    }

    /// Every container this daemon accounts for now, (name, engine ID once known): the pools'
    /// books, then the orphans.
    pub fn accounted(&self) -> Vec<(String, Option<String>)> {
        let mut v = Vec::new();
        for pool in self.books.all() {
            let st = pool.lock();
            v.extend(
                st.known()
                    .map(|(k, id, _)| (k.to_string(), id.map(str::to_string))),
            );
        }
        v.extend(
            self.fleet
                .orphans()
                .into_iter()
                .map(|(k, id, _)| (k, Some(id))),
        );
        v
    }
}
