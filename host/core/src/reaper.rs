//! The reaper and the image check: what leaves the pool on its own schedule.
//!
//! - **reaper** (one task): destroys expired leases; recycles ready containers past
//!   `max_warm_age` or `max_lifetime`, of a moved image or of an old spec, one per tick so a pool
//!   is never emptied at once; trims ready containers above the target, one per tick.
//! - **image check** (one per pool): resolves the image reference now and then, so a tag that
//!   moved drains the old image's containers as they come free.

use std::sync::Arc;

use tokio::time::{Instant, sleep};
use tracing::{debug, info};

use crate::backend::Backend;
use crate::lease::Lease;
use crate::manager::{Manager, lock};
use crate::pool::{Pool, ReadyContainer};

impl<B: Backend> Manager<B> {
    pub(crate) async fn reaper_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = sleep(self.cfg.tick) => {}
            }
            self.reap_once(Instant::now());
        }
    }

    pub(crate) fn reap_once(self: &Arc<Self>, now: Instant) {
        let expired: Vec<Lease> = {
            let mut leases = lock(&self.leases);
            let ids: Vec<String> = leases
                .iter()
                .filter(|(_, l)| l.expires <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| leases.remove(id)).collect()
        };
        for lease in expired {
            info!(lease = %lease.id, pool = %lease.pool.cfg().name, "lease expired; destroying its container");
            lease.pool.lock().counters.expired_total += 1;
            self.retire_lease(lease, "expired");
        }
        for pool in self.pools().values() {
            let mut st = pool.lock();
            let mut doomed = Vec::new();
            // One container per tick: recycling a whole pool at once would empty it.
            let worn = |c: &ReadyContainer| {
                pool.cfg()
                    .max_warm_age
                    .is_some_and(|age| now.duration_since(c.ready_at) >= age)
                    || pool
                        .cfg()
                        .max_lifetime
                        .is_some_and(|life| now.duration_since(c.born) >= life)
            };
            if let Some(pos) = st
                .ready
                .iter()
                .position(|c| worn(c) || st.stale_image(c) || pool.stale_spec(c))
            {
                let c = st.ready.remove(pos).expect("position is valid");
                st.counters.recycled_total += 1;
                doomed.push((c.created.id, "recycled: age, lifetime, image or spec"));
            }
            // Scale down gently, one per tick, oldest first.
            let target = st.effective_target(&pool.cfg()) as usize;
            if st.ready.len() > target {
                let c = st.ready.pop_front().expect("non-empty");
                doomed.push((c.created.id, "scale-down"));
            }
            st.removing += doomed.len() as u32;
            drop(st);
            for (id, why) in doomed {
                self.emit(
                    "recycled",
                    &pool.cfg().name,
                    Some(&id),
                    None,
                    Some(why.to_string()),
                );
                self.spawn_destroy(pool.clone(), id, false, why);
            }
        }
    }

    /// Resolve the pool's image reference now and then; when the tag moved to a new image ID,
    /// ready containers of the old one are recycled (one per reaper tick) and leased ones are
    /// not reused, so the pool drains to the new image without killing anything in use.
    pub(crate) async fn image_loop(self: Arc<Self>, pool: Arc<Pool>) {
        loop {
            if self.engine_up() {
                match self.backend.image_id(&pool.cfg().spec.image).await {
                    Ok(Some(id)) => {
                        let mut st = pool.lock();
                        if st.current_image_id.as_ref().is_some_and(|old| *old != id) {
                            info!(pool = %pool.cfg().name, image = %pool.cfg().spec.image, new_id = %id, "image moved; draining containers of the old one");
                        }
                        st.current_image_id = Some(id);
                    }
                    Ok(None) => {} // not present locally; the next create pulls it
                    Err(e) => debug!(pool = %pool.cfg().name, error = %e, "image check failed"),
                }
            }
            tokio::select! {
                _ = pool.cancel.cancelled() => return,
                _ = sleep(pool.cfg().image_check_interval) => {}
            }
        }
    }
}
