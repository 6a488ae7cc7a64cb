//! The daemon's background work, every piece spawned on the manager's [`TaskTracker`] and
//! stopped by its one [`CancellationToken`]:
//!
//! - **monitor**: pings the engine each tick; the first success runs the startup sweep or, with a
//!   state store, the reconcile ([`crate::reconcile`]).
//! - **refill** (one per pool): asks the sizing policy for a target, approves creates under the
//!   pool lock, spawns them. Woken early by acquires, creates and removals.
//! - **reaper** and **image check**: in [`crate::reaper`].
//! - **commit** (with a state store): the group commit in [`crate::persist`].
//! - **health** (one per pool): probes ready containers every `interval`, when the pool has a check.
//! - **events**: the backend's death notices; a dead ready container is never handed out.
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep};
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError};
use crate::manager::{Manager, lock};
use crate::pool::{Delivery, DeliveryError, Pool, ReadyContainer};
use crate::store::Change;

impl<B: Backend> Manager<B> {
    /// Spawn every background task. Call once.
    pub fn start(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        self.tracker
            .spawn(async move { this.backend.watch(tx, this.cancel.clone()).await });
        self.tracker.spawn(self.clone().events_loop(rx));
        self.tracker.spawn(self.clone().monitor_loop());
        self.tracker.spawn(self.clone().reaper_loop());
        self.tracker.spawn(self.clone().commit_loop());
        for pool in self.pools().values() {
            self.start_pool(pool);
        }
    }

    /// Spawn one pool's own loops; they stop with the pool's token (a reload that removes the
    /// pool) or the daemon's. The health loop always runs, since a reload may add a check.
    pub(crate) fn start_pool(self: &Arc<Self>, pool: &Arc<Pool>) {
        self.tracker.spawn(self.clone().refill_loop(pool.clone()));
        self.tracker.spawn(self.clone().image_loop(pool.clone()));
        self.tracker.spawn(self.clone().health_loop(pool.clone()));
    }

    fn set_engine(&self, up: bool, err: Option<String>) {
        let was = self.engine.up.swap(up, Ordering::AcqRel);
        if let Some(e) = &err {
            *lock(&self.engine.last_error) = Some(e.clone());
        }
        match (was, up) {
            (false, true) => {
                info!("container engine reachable");
                for p in self.pools().values() {
                    p.touch();
                }
            }
            (true, false) => error!(
                error = err.as_deref().unwrap_or(""),
                "container engine unreachable"
            ),
            _ => {}
        }
    }

    async fn monitor_loop(self: Arc<Self>) {
        loop {
            match self.backend.ping().await {
                Ok(()) => {
                    if !*self.swept.borrow() {
                        self.startup_cleanup().await;
                    }
                    self.set_engine(*self.swept.borrow(), None);
                }
                Err(e) => self.set_engine(false, Some(e.to_string())),
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = sleep(self.cfg.tick) => {}
            }
        }
    }

    async fn refill_loop(self: Arc<Self>, pool: Arc<Pool>) {
        let mut swept = self.swept.subscribe();
        tokio::select! {
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
            let retry_at = pool.lock().retry_at;
            let wake = match retry_at {
                Some(t) if t > now => (t - now).min(self.cfg.tick),
                _ => self.cfg.tick,
            };
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
        let approved = {
            let mut st = pool.lock();
            st.target = decision.target.min(pool.cfg().max_ready);
            st.target_reason = decision.reason;
            st.approve_refill(&pool.cfg(), &self.cfg.breaker, &self.cap, Instant::now())
        };
        if approved > 0 {
            debug!(pool = %pool.cfg().name, approved, "refill");
        }
        for _ in 0..approved {
            self.spawn_create(pool.clone(), None);
        }
    }

    /// Create one container whose slot was already approved (counted as `creating`). With
    /// `deliver`, it goes to that acquire (a cold create); otherwise into the pool.
    pub(crate) fn spawn_create(
        self: &Arc<Self>,
        pool: Arc<Pool>,
        deliver: Option<oneshot::Sender<Delivery>>,
    ) {
        let this = self.clone();
        self.tracker.spawn(async move {
            // Waiting for a permit stops at shutdown; a create that started is let finish, so
            // its container is known and destroyed rather than left half-made.
            let permit = tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => None,
                p = this.create_permits.clone().acquire_owned() => p.ok(),
            };
            let cold = deliver.is_some();
            let Some(permit) = permit else {
                this.finish_create(&pool, cold, Err(DeliveryError::ShuttingDown), deliver, 0);
                return;
            };
            let t0 = Instant::now();
            // The spec and its generation are read together, so a reload in between can only
            // make this container stale, never mislabel it.
            let (cfg, generation) = (pool.cfg(), pool.generation());
            let result = this.backend.create(&cfg.name, &cfg.spec).await;
            drop(permit);
            let ms = t0.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
            let result = match result {
                // Shutdown, or a reload removed the pool, while this create ran.
                Ok(created) if pool.cancel.is_cancelled() => {
                    if let Err(e) = this.backend.destroy(&created.id).await {
                        warn!(container = %created.id, error = %e, "late create not removed; the final sweep will");
                    }
                    Err(DeliveryError::ShuttingDown)
                }
                Ok(created) => {
                    let now = Instant::now();
                    Ok(ReadyContainer {
                        created,
                        ready_at: now,
                        born: now,
                        uses: 0,
                        lendable: this.born_lendable(),
                        generation,
                    })
                }
                Err(e) => Err(DeliveryError::Create(e)),
            };
            this.finish_create(&pool, cold, result, deliver, ms);
        });
    }

    fn finish_create(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        cold: bool,
        result: Delivery,
        deliver: Option<oneshot::Sender<Delivery>>,
        ms: u32,
    ) {
        let mut st = pool.lock();
        st.creating -= 1;
        if cold {
            st.creating_cold -= 1;
        }
        match result {
            Ok(c) => {
                st.record_create_ok(ms);
                info!(pool = %pool.cfg().name, container = %c.created.name, ms, "container ready");
                self.emit(
                    "created",
                    &pool.cfg().name,
                    Some(&c.created.id),
                    None,
                    Some(format!("{ms} ms")),
                );
                self.emit("ready", &pool.cfg().name, Some(&c.created.id), None, None);
                match deliver {
                    // Persisting: a cold container reaches its acquire only after the commit
                    // that records it as lendable.
                    Some(tx) if !c.lendable => {
                        st.leased += 1;
                        self.deliver_after_commit(pool, c, tx);
                    }
                    Some(tx) => {
                        st.leased += 1;
                        if let Err(Ok(c)) = tx.send(Ok(c)) {
                            st.leased -= 1; // the acquire gave up; the pool keeps it
                            st.offer(c);
                        }
                    }
                    None => {
                        st.offer(c);
                        if !st.waiters.is_empty() {
                            self.urge_commit();
                        }
                    }
                }
            }
            Err(err) => {
                self.cap.release(1);
                if let DeliveryError::Create(e) = &err {
                    if let BackendError::Unavailable(m) = e {
                        // An outage is not the pool's fault: back off without tripping the breaker.
                        st.retry_at = Some(Instant::now() + self.cfg.breaker.base_backoff);
                        drop(st);
                        self.set_engine(false, Some(m.clone()));
                        st = pool.lock();
                    } else {
                        st.record_create_failed(e, &self.cfg.breaker, Instant::now());
                        let failures = st.consecutive_failures;
                        warn!(pool = %pool.cfg().name, failures, error = %e, "create failed");
                        if failures == self.cfg.breaker.threshold {
                            self.emit(
                                "breaker",
                                &pool.cfg().name,
                                None,
                                None,
                                Some(format!("open after {failures} failures: {e}")),
                            );
                            error!(pool = %pool.cfg().name, "create breaker open: pool degraded");
                        }
                    }
                }
                if let Some(tx) = deliver {
                    let _ = tx.send(Err(err));
                }
            }
        }
        drop(st);
        pool.touch();
    }

    /// Destroy a container already counted as `removing` (or `unhealthy`), then free its slot.
    pub(crate) fn spawn_destroy(
        self: &Arc<Self>,
        pool: Arc<Pool>,
        id: String,
        unhealthy: bool,
        why: &'static str,
    ) {
        let this = self.clone();
        self.tracker.spawn(async move {
            let _permit = this.remove_permits.acquire().await;
            let mut attempt = 0u32;
            loop {
                match this.backend.destroy(&id).await {
                    Ok(()) => break,
                    // At shutdown the final sweep takes over; otherwise retry with back-off.
                    Err(e) if this.cancel.is_cancelled() || attempt >= 5 => {
                        warn!(container = %id, error = %e, "destroy failed; the label sweep will remove it");
                        break;
                    }
                    Err(e) => {
                        attempt += 1;
                        warn!(container = %id, attempt, error = %e, "destroy failed; retrying");
                        tokio::select! {
                            _ = this.cancel.cancelled() => {}
                            _ = sleep(this.cfg.breaker.backoff(attempt)) => {}
                        }
                    }
                }
            }
                        debug!(pool = %pool.cfg().name, container = %id, why, "destroyed");
            this.emit("removed", &pool.cfg().name, Some(&id), None, Some(why.to_string()));
            this.record(|| Change::Forget(id.clone()));
            {
                let mut st = pool.lock();
                if unhealthy {
                    st.unhealthy -= 1;
                } else {
                    st.removing -= 1;
                }
                st.counters.destroyed_total += 1;
            }
            this.cap.release(1);
            pool.touch();
        });
    }

    /// Take a ready container out of service and destroy it.
    pub(crate) fn retire_ready(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        id: &str,
        unhealthy: bool,
        why: &'static str,
    ) -> bool {
        let pulled = {
            let mut st = pool.lock();
            let pulled = st.pull_ready(id, unhealthy).is_some();
            if pulled && unhealthy {
                st.counters.unhealthy_total += 1;
            }
            pulled
        };
        if pulled {
            self.emit(
                if unhealthy { "unhealthy" } else { "recycled" },
                &pool.cfg().name,
                Some(id),
                None,
                Some(why.to_string()),
            );
            self.spawn_destroy(pool.clone(), id.to_string(), unhealthy, why);
        }
        pulled
    }
}
