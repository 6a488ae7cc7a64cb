//! Layer 3: upkeep, one part ([`Upkeep`]): the daemon's background loops, every one spawned on
//! the runtime's task tracker and stopped by its one cancellation token.
//!
//! - `monitor.rs`: one per engine, pings it each tick; the first success runs the startup
//!   cleanup ([`Persistence`]); an engine that comes back is compared with the books at once
//!   (the running sweep);
//! - `refill.rs`: one per pool, asks the sizing policy for a target, approves creates under the
//!   pool lock (bb8's approvals: counted as creating before any task is spawned, so concurrent
//!   refills never overshoot a cap) and has [`Lifecycle`] run them; also warm-up;
//! - `reaper.rs`: expiry (through [`Leasing`]), recycling, scale-down; and the image check;
//! - `health.rs`: health probes; `deaths.rs`: the engine's death notices;
//! - `sweep.rs`: the running sweep.
//!
//! The commit loop is [`Persistence`]'s; [`Upkeep::start`] spawns it with the rest.
//!
//! It holds no state of its own: it works on the layer-0 parts ([`crate::shared`]) and calls
//! [`Lifecycle`] (layer 1), [`Leasing`] and [`Persistence`] (layer 2); nothing calls it but the
//! manager's top (start, reload).

mod deaths;
mod health;
mod monitor;
mod reaper;
mod refill;
mod sweep;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::leasing::Leasing;
use crate::lifecycle::Lifecycle;
use crate::persistence::Persistence;
use crate::pool::Pool;
use crate::shared::Shared;

pub use sweep::SweepReport;

/// The background loops (see the module doc). Cheap to clone: each loop holds a clone.
pub(crate) struct Upkeep<B> {
    s: Arc<Shared<B>>,
    life: Lifecycle<B>,
    leasing: Leasing<B>,
    persistence: Persistence<B>,
}

impl<B> Clone for Upkeep<B> {
    fn clone(&self) -> Self {
        Self {
            s: self.s.clone(),
            life: self.life.clone(),
            leasing: self.leasing.clone(),
            persistence: self.persistence.clone(),
        }
    }
}

impl<B: Backend> Upkeep<B> {
    pub fn new(
        s: Arc<Shared<B>>,
        life: Lifecycle<B>,
        leasing: Leasing<B>,
        persistence: Persistence<B>,
    ) -> Self {
        Self {
            s,
            life,
            leasing,
            persistence,
        }
    }

    /// Spawn every background task. Call once.
    pub fn start(&self) {
        let tracker = self.s.rt.tracker();
        // One event stream and one monitor per engine; the death notices of all engines meet in
        // one loop (engine IDs are unique across engines).
        let (tx, rx) = mpsc::channel(256);
        for e in 0..self.s.fleet.len() {
            let (s, tx) = (self.s.clone(), tx.clone());
            tracker.spawn(async move {
                s.fleet.backend(e).watch(tx, s.rt.cancel().clone()).await;
            });
            tracker.spawn(self.clone().monitor_loop(e));
        }
        drop(tx);
        tracker.spawn(self.clone().events_loop(rx));
        tracker.spawn(self.clone().reaper_loop());
        tracker.spawn(self.persistence.clone().commit_loop());
        tracker.spawn(self.clone().sweep_loop());
        for pool in self.s.books.serving().values() {
            self.start_pool(pool);
        }
    }

    /// Spawn one pool's own loops; they stop with the pool's token (a reload that removes the
    /// pool) or the daemon's. The health loop always runs, since a reload may add a check.
    pub(crate) fn start_pool(&self, pool: &Arc<Pool>) {
        pool.lock().set_up_mask(self.s.fleet.up_mask());
        let tracker = self.s.rt.tracker();
        tracker.spawn(self.clone().refill_loop(pool.clone()));
        tracker.spawn(self.clone().image_loop(pool.clone()));
        tracker.spawn(self.clone().health_loop(pool.clone()));
    }
}
