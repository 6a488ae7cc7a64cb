//! The refill loop (one per pool): asks the sizing policy for a target, approves creates under
//! the pool lock (bb8's approvals: counted as creating before any task is spawned, so
//! concurrent refills never overshoot a cap), and has [`crate::lifecycle`] run them. Woken early
//! by acquires, creates and removals. Warm-up, which waits for refill to bring a pool to its
//! target, is here too.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout_at};
use tracing::debug;

use super::Upkeep;
use crate::backend::Backend;
use crate::error::WarmUpError;
use crate::policy::bounds;
use crate::pool::Pool;
use crate::stats::PoolStats;

impl<B: Backend> Upkeep<B> {
    pub(super) async fn refill_loop(self, pool: Arc<Pool>) {
        let s = self.s.clone();
        tokio::select! {
            biased;
            _ = pool.cancel.cancelled() => return,
            _ = s.rt.wait_swept() => {}
        }
        let tick = s.rt.cfg().tick;
        loop {
            if s.fleet.any_up() {
                self.refill_once(&pool).await;
            }
            // Sleep until woken, the next tick, or the end of a back-off, whichever is first.
            // A back-off already past is no reason to wake early (that would spin).
            let now = Instant::now();
            let retry_at = pool.lock().next_retry(now);
            let wake = retry_at.map_or(tick, |t| (t - now).min(tick));
            tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => return,
                _ = pool.refill.notified() => {}
                _ = sleep(wake) => {}
            }
        }
    }

    /// One refill decision: policy target, approvals under the lock, then spawns.
    async fn refill_once(&self, pool: &Arc<Pool>) {
        let s = &self.s;
        let snapshot = {
            let st = pool.lock();
            pool.snapshot(&st, Instant::now(), s.rt.epoch(), s.fleet.caps())
        };
        let decision = pool.policies().sizing.decide(&snapshot).await;
        let cfg = pool.cfg();
        // The ceiling the policy was shown: the scale override's while one holds.
        let decision = bounds::decision(decision, snapshot.max_ready);
        // Only engines that have the pool's runtime get its containers.
        let views = s
            .fleet
            .views(s.fleet.runtime_mask(cfg.spec.runtime.as_deref()));
        let approved = {
            let mut st = pool.lock();
            st.set_target(decision, &cfg);
            st.approve_refill(
                &cfg,
                &s.rt.cfg().breaker,
                s.fleet.caps(),
                &views,
                Instant::now(),
                || s.rt.ids().container_name(&cfg.name),
            )
        };
        if !approved.is_empty() {
            debug!(pool = %cfg.name, approved = approved.len(), "refill");
        }
        for (name, engine) in approved {
            self.life.spawn_create(pool.clone(), name, engine, None);
        }
    }

    /// Wait until the pool has as many ready containers as its target.
    pub async fn warm_up(&self, name: &str, within: Duration) -> Result<PoolStats, WarmUpError> {
        let s = &self.s;
        let unknown = || WarmUpError::UnknownPool(name.into());
        let pool = s.books.get(name).ok_or_else(unknown)?;
        let mut changed = pool.changed.subscribe();
        let deadline = Instant::now() + within;
        pool.touch();
        loop {
            let (ready, target) = {
                let mut st = pool.lock();
                (st.ready_up(), st.effective_target(&pool.cfg()))
            };
            if s.is_ready() && ready >= target {
                // A reload may have removed the pool while we waited.
                return s.pool_stats(name).ok_or_else(unknown);
            }
            if !matches!(timeout_at(deadline, changed.changed()).await, Ok(Ok(()))) {
                return Err(WarmUpError::Timeout {
                    pool: name.into(),
                    target,
                    ready,
                    waited: within,
                });
            }
        }
    }
}
