//! The reaper and the image check: what leaves the pool on its own schedule.
//!
//! - **reaper** (one task): removes expired leases' containers (through [`Leasing`]); recycles
//!   ready containers past `max_warm_age` or `max_lifetime`, of a moved image or of an old spec,
//!   one per tick so a pool is never emptied at once; trims ready containers above the target,
//!   one per tick; ends a pool's failure streak once a fresh container survived probation;
//!   suspends leases idle past their pool's `lease.suspend_after_idle`.
//! - **image check** (one per pool): resolves the image reference now and then, so a tag that
//!   moved drains the old image's containers as they come free.
//!
//! [`Leasing`]: crate::leasing::Leasing

use std::sync::Arc;

use tokio::time::{Instant, sleep};
use tracing::{debug, info};

use super::Upkeep;
use crate::backend::Backend;
use crate::lifecycle::{CALL_TIMEOUT, call};
use crate::pool::{LeaseEnd, Pool, ReadyContainer};

impl<B: Backend> Upkeep<B> {
    pub(super) async fn reaper_loop(self) {
        loop {
            tokio::select! {
                biased;
                _ = self.s.rt.cancel().cancelled() => return,
                _ = sleep(self.s.rt.cfg().tick) => {}
            }
            self.reap_once(Instant::now());
        }
    }

    fn reap_once(&self, now: Instant) {
        for lease in self.s.leases.take_expired(now) {
            info!(lease = %lease.id, pool = %lease.pool.name(), "lease expired; removing its container");
            self.leasing
                .retire_lease(lease, LeaseEnd::Expired, "expired");
        }
        // Leases idle past their pool's `suspend_after_idle`: suspended on tasks of their own.
        self.leasing.suspend_idle(now);
        for pool in self.s.books.serving().values() {
            let cfg = pool.cfg();
            let mut doomed = Vec::new();
            {
                let mut st = pool.lock();
                st.probation_tick(now, cfg.probation);
                // One container per tick: recycling a whole pool at once would empty it.
                // Only on engines that are up: a removal on a down engine waits for it anyway.
                let worn = |c: &ReadyContainer, st: &crate::pool::PoolState| {
                    crate::engines::has(st.up_mask(), c.engine)
                        && (cfg
                            .max_warm_age
                            .is_some_and(|age| now.saturating_duration_since(c.ready_at) >= age)
                            || cfg
                                .max_lifetime
                                .is_some_and(|life| now.saturating_duration_since(c.born) >= life)
                            || st.stale_image(c)
                            || pool.stale_spec(c))
                };
                if let Some(c) = st.recycle_one(worn) {
                    doomed.push((c, "recycled: age, lifetime, image or spec"));
                }
                // Scale down gently, one per tick, oldest first.
                if let Some(c) = st.scale_down_one(&cfg) {
                    doomed.push((c, "scale-down"));
                }
            }
            for (c, why) in doomed {
                self.s.events.emit(
                    "recycled",
                    &cfg.name,
                    Some((&c.created.id, c.engine)),
                    None,
                    Some(why.to_string()),
                );
                self.life.spawn_removal_of(pool, &c, why);
            }
        }
        self.drain_retired_again();
    }

    /// A removed pool drained its ready containers when it was removed, but a container can
    /// still come ready there afterwards: a create or a reset that was under way, a cold
    /// container its acquire gave back. Every path that makes a container ready is covered
    /// here at once: each tick drains the removed pools again, so nothing stays ready in a pool
    /// that no longer serves (it would hold its cap slots for ever).
    fn drain_retired_again(&self) {
        for pool in self.s.books.retired() {
            let doomed = {
                let mut st = pool.lock();
                if st.ready().next().is_none() {
                    continue;
                }
                st.drain(false, self.s.fleet.caps()).1
            };
            for c in doomed {
                self.life.spawn_removal_of(&pool, &c, "pool removed");
            }
        }
    }

    /// Resolve the pool's image reference now and then; when the tag moved to a new image ID,
    /// ready containers of the old one are recycled (one per reaper tick) and leased ones are
    /// not reused, so the pool drains to the new image without killing anything in use.
    pub(super) async fn image_loop(self, pool: Arc<Pool>) {
        let fleet = &self.s.fleet;
        loop {
            // Each engine resolves the reference on its own: a tag moves on one engine at a
            // time, and only that engine's containers drain.
            for e in 0..fleet.len() {
                if !fleet.is_up(e) {
                    continue;
                }
                let image = pool.cfg().spec.image.clone();
                let engine = fleet.name(e);
                match call(CALL_TIMEOUT, fleet.backend(e).image_id(&image)).await {
                    Ok(id) => {
                        // `None`: not present there; the next create there pulls or copies it.
                        if pool.lock().set_image_id(e, id.clone()) {
                            info!(pool = %pool.name(), %engine, %image, new_id = ?id, "image moved; draining containers of the old one");
                        }
                    }
                    Err(err) => {
                        debug!(pool = %pool.name(), %engine, error = %err, "image check failed")
                    }
                }
            }
            tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => return,
                _ = sleep(pool.cfg().image_check_interval) => {}
            }
        }
    }
}
