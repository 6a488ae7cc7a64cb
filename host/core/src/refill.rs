//! The daemon's background loops, every one spawned on the manager's [`TaskTracker`] and stopped
//! by its one [`CancellationToken`]; this module starts them and holds two of them:
//!
//! - **monitor**: pings the engine each tick; the first success runs the startup sweep or, with a
//!   state store, the reconcile ([`crate::reconcile`]).
//! - **refill** (one per pool): asks the sizing policy for a target, approves creates under the
//!   pool lock (bb8's approvals: counted as creating before any task is spawned, so concurrent
//!   refills never overshoot a cap), spawns them ([`crate::lifecycle`]). Woken early by acquires,
//!   creates and removals.
//!
//! Warm-up, which waits for refill to bring a pool to its target, is here too.
//!
//! The others: the reaper and image check ([`crate::reaper`]), the group commit
//! ([`crate::group_commit`]), health probes ([`crate::health`]), death notices ([`crate::deaths`]) and
//! the running sweep ([`crate::sweep`]).
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{debug, error, info};

use crate::backend::Backend;
use crate::error::WarmUpError;
use crate::manager::Manager;
use crate::policy::bounds;
use crate::pool::Pool;
use crate::stats::PoolStats;
use crate::sync::lock;

/// Bound on one ping: an engine cut off the network (packets dropped, not refused) is shown
/// down within this, not after the client's two-minute request timeout.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl<B: Backend> Manager<B> {
    /// Spawn every background task. Call once.
    pub fn start(self: &Arc<Self>) {
        // One event stream and one monitor per engine; the death notices of all engines meet in
        // one loop (engine IDs are unique across engines).
        let (tx, rx) = mpsc::channel(256);
        for e in 0..self.engines.len() {
            let (this, tx) = (self.clone(), tx.clone());
            self.tracker.spawn(async move {
                this.backend_of(e).watch(tx, this.cancel.clone()).await;
            });
            self.tracker.spawn(self.clone().monitor_loop(e));
        }
        drop(tx);
        self.tracker.spawn(self.clone().events_loop(rx));
        self.tracker.spawn(self.clone().reaper_loop());
        self.tracker.spawn(self.clone().commit_loop());
        self.tracker.spawn(self.clone().sweep_loop());
        for pool in self.pools().values() {
            self.start_pool(pool);
        }
    }

    /// Spawn one pool's own loops; they stop with the pool's token (a reload that removes the
    /// pool) or the daemon's. The health loop always runs, since a reload may add a check.
    pub(crate) fn start_pool(self: &Arc<Self>, pool: &Arc<Pool>) {
        pool.lock().set_up_mask(self.up_mask());
        self.tracker.spawn(self.clone().refill_loop(pool.clone()));
        self.tracker.spawn(self.clone().image_loop(pool.clone()));
        self.tracker.spawn(self.clone().health_loop(pool.clone()));
    }

    /// Engine `e` was found up or down. A change reaches every pool's books at once (only
    /// containers on engines that are up are handed out), and an engine that comes back is
    /// compared with the books right away (the running sweep): what died while it was away is
    /// handled, and what the daemon does not account for is removed.
    pub(crate) fn set_engine(self: &Arc<Self>, e: usize, up: bool, err: Option<String>) {
        let engine = self.engine(e);
        let was = engine.up.swap(up, Ordering::AcqRel);
        if let Some(msg) = &err {
            *lock(&engine.last_error) = Some(msg.clone());
        }
        if was == up {
            return;
        }
        let mask = self.up_mask();
        for p in self.all_pools() {
            p.lock().set_up_mask(mask);
            p.touch();
        }
        let name = engine.spec.name.clone();
        if up {
            info!(engine = %name, "container engine reachable");
            self.emit_engine("engine_up", e, None);
            if *self.swept.borrow() {
                let this = self.clone();
                self.tracker.spawn(async move {
                    this.sweep_engine(e).await;
                });
            }
        } else {
            error!(engine = %name, error = err.as_deref().unwrap_or(""), "container engine unreachable");
            self.emit_engine("engine_down", e, err);
        }
    }

    async fn monitor_loop(self: Arc<Self>, e: usize) {
        loop {
            match self.call(PING_TIMEOUT, self.backend_of(e).ping()).await {
                Ok(()) => {
                    let engine = self.engine(e);
                    if !engine.cleaned.load(Ordering::Acquire) {
                        self.startup_cleanup(e).await;
                    }
                    let cleaned = engine.cleaned.load(Ordering::Acquire);
                    self.set_engine(e, cleaned, None);
                }
                Err(err) => self.set_engine(e, false, Some(err.to_string())),
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = sleep(self.cfg.tick) => {}
            }
        }
    }

    async fn refill_loop(self: Arc<Self>, pool: Arc<Pool>) {
        let mut swept = self.swept.subscribe();
        tokio::select! {
            biased;
            _ = pool.cancel.cancelled() => return,
            _ = swept.wait_for(|s| *s) => {}
        }
        loop {
            if self.engine_up() {
                self.refill_once(&pool).await;
            }
            // Sleep until woken, the next tick, or the end of a back-off, whichever is first.
            // A back-off already past is no reason to wake early (that would spin).
            let now = Instant::now();
            let retry_at = pool.lock().next_retry(now);
            let wake = retry_at.map_or(self.cfg.tick, |t| (t - now).min(self.cfg.tick));
            tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => return,
                _ = pool.refill.notified() => {}
                _ = sleep(wake) => {}
            }
        }
    }

    /// One refill decision: policy target, approvals under the lock, then spawns.
    pub(crate) async fn refill_once(self: &Arc<Self>, pool: &Arc<Pool>) {
        let snapshot = {
            let st = pool.lock();
            pool.snapshot(&st, Instant::now(), self.epoch, &self.cap)
        };
        let decision = pool.policies().sizing.decide(&snapshot).await;
        let cfg = pool.cfg();
        let decision = bounds::decision(decision, cfg.max_ready);
        let views = self.engine_views(u64::MAX);
        let approved = {
            let mut st = pool.lock();
            st.set_target(decision, &cfg);
            st.approve_refill(
                &cfg,
                &self.cfg.breaker,
                &self.cap,
                &views,
                Instant::now(),
                || self.ids.container_name(&cfg.name),
            )
        };
        if !approved.is_empty() {
            debug!(pool = %cfg.name, approved = approved.len(), "refill");
        }
        for (name, engine) in approved {
            self.spawn_create(pool.clone(), name, engine, None);
        }
    }
}

impl<B: Backend> Manager<B> {
    /// Wait until the pool has as many ready containers as its target.
    pub async fn warm_up(&self, name: &str, within: Duration) -> Result<PoolStats, WarmUpError> {
        let unknown = || WarmUpError::UnknownPool(name.into());
        let pool = self.pool(name).ok_or_else(unknown)?;
        let mut changed = pool.changed.subscribe();
        let deadline = Instant::now() + within;
        pool.touch();
        loop {
            let (ready, target) = {
                let mut st = pool.lock();
                (st.ready_up(), st.effective_target(&pool.cfg()))
            };
            if self.is_ready() && ready >= target {
                // A reload may have removed the pool while we waited.
                return self.pool_stats(name).ok_or_else(unknown);
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
