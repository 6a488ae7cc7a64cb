//! Config reload: pools are added, removed (drained) or changed in place, without a restart.
//!
//! The daemon's reload task validates the new file first (an invalid one never gets here),
//! decides what becomes of each pool (`warmpool_config::ReloadPlan`: the one place that compares
//! two configs), and hands the decision to [`Manager::reconfigure`], the one place that changes
//! the pool map. It applies what it is told and compares no settings itself:
//!
//! - **added**: a new pool, with its own loops, refills from zero;
//! - **removed**: its loops stop, queued acquires are told, its ready containers are destroyed;
//!   open leases keep working until they are released or expire, and then their containers are
//!   destroyed (never returned to a pool that no longer exists);
//! - **changed**: sizes, timeouts and policies take effect at once. A changed container spec
//!   starts a new generation: ready containers of the old one are recycled one per reaper tick
//!   (no create storm), and leased ones are not reused. Changed sizes clear the pool's scale
//!   override (`scale.rs`): the file is the operator's newer word.
//!
//! A removed pool's scale override, and a cleared one, are forgotten in the store too.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::manager::Manager;
use crate::policy::Policies;
use crate::pool::Pool;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReloadReport {
    /// Names of the pools the reload added.
    pub added: Vec<String>,
    /// Names of the pools the reload removed (they drain).
    pub removed: Vec<String>,
    /// Pools whose settings changed (spec changes included).
    pub changed: Vec<String>,
    /// Of `changed`, the pools whose container spec changed; their ready containers drain.
    pub respec: Vec<String>,
}

impl ReloadReport {
    /// Whether the reload added, removed and changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What becomes of one pool at a reload, as the caller decided it. A reload's list of them is
/// the whole new set of pools: a running pool it does not name is removed.
pub enum PoolChange {
    /// A new pool, started with its policies.
    Add {
        /// Its settings.
        cfg: PoolConfig,
        /// Its policies.
        policies: Policies,
    },
    /// A running pool whose settings changed, changed in place.
    Change {
        /// Its new settings.
        cfg: PoolConfig,
        /// Policies built again, or `None` when the settings they are built from did not
        /// change (they are trait objects, so the caller, who knows those settings, decides).
        policies: Option<Policies>,
        /// Its container spec changed: a new generation starts, and containers of the old one
        /// drain.
        respec: bool,
        /// Its `min_ready`, `max_ready` or `max_total` changed: a scale override is cleared.
        resize: bool,
    },
    /// A running pool left as it is, by name.
    Keep(String),
}

impl<B: Backend> Manager<B> {
    /// Make the pools those of `pools`: add, change in place, keep, and remove (drain) every
    /// running pool the list does not name. A change or keep of a pool that is not running, or an
    /// add of one that is, disagrees with the pool map and is skipped with a warning.
    pub fn reconfigure(self: &Arc<Self>, pools: Vec<PoolChange>) -> ReloadReport {
        let mut report = ReloadReport::default();
        if self.s.rt.cancel().is_cancelled() {
            return report;
        }
        let old = self.s.books.serving();
        let mut next: BTreeMap<String, Arc<Pool>> = BTreeMap::new();
        let mut started = Vec::new();
        for change in pools {
            match change {
                PoolChange::Keep(name) => match old.get(&name) {
                    Some(pool) => {
                        next.insert(name, pool.clone());
                    }
                    None => warn!(pool = %name, "reload: a pool to keep is not running; skipped"),
                },
                PoolChange::Change {
                    cfg,
                    policies,
                    respec,
                    resize,
                } => {
                    let name = cfg.name.clone();
                    let Some(pool) = old.get(&name) else {
                        warn!(pool = %name, "reload: a pool to change is not running; not added");
                        continue;
                    };
                    if pool.reconfigure(cfg, policies, respec, resize) {
                        self.s.events.publish(
                            "scale",
                            &name,
                            "cleared: a reload changed the pool's sizes".into(),
                        );
                    }
                    if resize {
                        // Whether or not the books held one: the store may (a request a reload
                        // overtook, or one a restore has yet to put back).
                        self.s.persist.scale_cleared(&name);
                    }
                    if respec {
                        report.respec.push(name.clone());
                    }
                    report.changed.push(name.clone());
                    next.insert(name, pool.clone());
                }
                PoolChange::Add { cfg, policies } => {
                    let name = cfg.name.clone();
                    if let Some(pool) = old.get(&name) {
                        warn!(pool = %name, "reload: a pool to add is running already; kept as it is");
                        next.insert(name, pool.clone());
                        continue;
                    }
                    let pool = Pool::new(cfg, policies, self.s.rt.cancel().child_token());
                    started.push(pool.clone());
                    report.added.push(name.clone());
                    next.insert(name, pool);
                }
            }
        }
        let removed: Vec<Arc<Pool>> = old
            .iter()
            .filter(|(name, _)| !next.contains_key(*name))
            .map(|(_, p)| p.clone())
            .collect();
        self.s.books.swap(next);
        for pool in &started {
            self.upkeep.start_pool(pool);
        }
        for pool in removed {
            let name = pool.cfg().name.clone();
            self.s.persist.scale_cleared(&name);
            report.removed.push(name);
            self.drain_removed(&pool);
        }
        for name in &report.added {
            self.s.events.publish("reload", name, "pool added".into());
        }
        for name in &report.removed {
            self.s
                .events
                .publish("reload", name, "pool removed; draining".into());
        }
        for name in &report.changed {
            let what = if report.respec.contains(name) {
                "pool changed; containers of the old spec drain"
            } else {
                "pool changed"
            };
            self.s.events.publish("reload", name, what.into());
        }
        if !report.is_empty() {
            info!(added = ?report.added, removed = ?report.removed, changed = ?report.changed, "config reloaded");
        }
        report
    }

    /// A removed pool: stop its loops, tell its queued acquires, remove its ready containers.
    /// Its leases stay with their clients; releasing or expiring one removes the container.
    /// The pool is kept among the retired until its books are empty.
    fn drain_removed(&self, pool: &Arc<Pool>) {
        pool.cancel.cancel();
        let (_, doomed) = pool.lock().drain(false, self.s.fleet.caps());
        for c in doomed {
            self.life.spawn_removal_of(pool, &c, "pool removed");
        }
        self.s.books.retire(pool.clone());
    }
}
