//! Group commit: lease changes and promotions to the lendable set are batched and written by
//! one task every `commit_interval`, so no acquire ever waits for an fsync.
//!
//! The acquire path only pushes a [`Change`] onto a vector under a mutex. The committer takes the
//! batch, adds promotions (ready containers it makes lendable, a few per pool, enough for the
//! acquires expected before the next commit), writes everything in one transaction on tokio's
//! blocking pool, and only then marks the promoted containers lendable. An acquire that finds
//! ready containers but none lendable queues and wakes the committer at once, so it waits one
//! fsync, not a create. See [`crate::store`] for why this keeps a container from reaching two
//! clients across a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep};
use tracing::{error, warn};

use crate::backend::Backend;
use crate::manager::{Manager, lock};
use crate::pool::{Delivery, Pool, ReadyContainer};
use crate::store::{Change, LeaseStore, Persisted};

/// Lendable ready containers kept per pool at least, beyond what the acquire rate asks for.
const LEND_FLOOR: usize = 2;

/// A cold-created container waiting for the commit that makes it lendable, and its acquire.
struct HeldDelivery {
    pool: Arc<Pool>,
    container: ReadyContainer,
    tx: oneshot::Sender<Delivery>,
}

/// The manager's persistence state; `None` in the manager when no `state_dir` is configured.
pub(crate) struct Persister {
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) interval: Duration,
    pending: std::sync::Mutex<Vec<Change>>,
    held: std::sync::Mutex<Vec<HeldDelivery>>,
    urgent: Notify,
    pub(crate) commits: AtomicU64,
    pub(crate) commit_failures: AtomicU64,
    /// Duration of the last commit, in microseconds.
    pub(crate) last_commit_us: AtomicU64,
    /// What the store held at startup, taken once by reconcile.
    pub(crate) loaded: std::sync::Mutex<Option<Persisted>>,
    /// Held for a whole commit round; shutdown takes it to wait out a round in flight, whose
    /// promotions must land before it decides which containers were lendable.
    pub(crate) round: tokio::sync::Mutex<()>,
}

impl Persister {
    pub(crate) fn new(store: Arc<dyn LeaseStore>, interval: Duration) -> Self {
        Self {
            store,
            interval,
            pending: Default::default(),
            held: Default::default(),
            urgent: Notify::new(),
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            last_commit_us: AtomicU64::new(0),
            loaded: Default::default(),
            round: tokio::sync::Mutex::new(()),
        }
    }
}

/// Persistence figures for the stats and metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PersistStats {
    pub commits: u64,
    pub commit_failures: u64,
    pub last_commit_ms: f64,
    pub commit_interval_ms: u64,
}

impl<B: Backend> Manager<B> {
    /// Whether leases are persisted (a `state_dir` is configured).
    pub fn persists(&self) -> bool {
        self.persist.is_some()
    }

    pub fn persist_stats(&self) -> Option<PersistStats> {
        self.persist.as_ref().map(|p| PersistStats {
            commits: p.commits.load(Ordering::Relaxed),
            commit_failures: p.commit_failures.load(Ordering::Relaxed),
            last_commit_ms: p.last_commit_us.load(Ordering::Relaxed) as f64 / 1000.0,
            commit_interval_ms: p.interval.as_millis() as u64,
        })
    }

    /// Queue a change for the next commit. Without a store this is a no-op, and the change
    /// (which clones a lease's strings on the acquire path) is never even built.
    pub(crate) fn record(&self, change: impl FnOnce() -> Change) {
        if let Some(p) = &self.persist {
            let change = change();
            lock(&p.pending).push(change);
        }
    }

    /// Ask for a commit now rather than at the next interval.
    pub(crate) fn urge_commit(&self) {
        if let Some(p) = &self.persist {
            p.urgent.notify_one();
        }
    }

    /// New containers are lendable at once only when nothing is persisted.
    pub(crate) fn born_lendable(&self) -> bool {
        self.persist.is_none()
    }

    /// Hold a cold-created container until a commit made it lendable, then deliver it.
    /// The caller has counted it as leased.
    pub(crate) fn deliver_after_commit(
        &self,
        pool: &Arc<Pool>,
        container: ReadyContainer,
        tx: oneshot::Sender<Delivery>,
    ) {
        let p = self.persist.as_ref().expect("only called when persisting");
        self.record(|| Change::Lendable {
            container: container.created.id.clone(),
            pool: pool.cfg().name.clone(),
        });
        lock(&p.held).push(HeldDelivery {
            pool: pool.clone(),
            container,
            tx,
        });
        p.urgent.notify_one();
    }

    pub(crate) async fn commit_loop(self: Arc<Self>) {
        let Some(p) = &self.persist else { return };
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = p.urgent.notified() => {}
                _ = sleep(p.interval) => {}
            }
            if !self.commit_round().await {
                // A failing store: back off, and lend nothing new meanwhile.
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = sleep(p.interval * 10) => {}
                }
            }
        }
    }

    /// How many lendable containers `pool` should have ready before the next commit: the
    /// largest burst of acquires seen in one window of four commit intervals (decaying by half
    /// every 30 s), the queued acquires, and a floor. More costs only at a crash (they are
    /// destroyed then); fewer makes a burst wait one commit.
    fn lend_ahead(
        &self,
        st: &mut crate::pool::PoolState,
        interval: Duration,
        now: Instant,
    ) -> usize {
        let window = (interval * 4).max(Duration::from_millis(100));
        let burst = st
            .recent_acquires
            .iter()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) <= window)
            .count() as f64;
        let decay = 0.5f64.powf(interval.as_secs_f64() / 30.0);
        st.lend_peak = (st.lend_peak * decay).max(burst);
        LEND_FLOOR
            .max(st.lend_peak.ceil() as usize)
            .max(st.waiters.len() * 2)
    }

    /// One group commit. Returns `false` when the store failed.
    pub(crate) async fn commit_round(&self) -> bool {
        let Some(p) = &self.persist else { return true };
        let _round = p.round.lock().await;
        if self.cancel.is_cancelled() {
            return true; // shutdown flushes what is pending itself
        }
        let now = Instant::now();
        let mut promotions: Vec<(Arc<Pool>, Vec<String>)> = Vec::new();
        // Held deliveries first, then the changes: a delivery's `Lendable` change is queued
        // before the delivery, so taking in this order never delivers ahead of its commit.
        let held: Vec<HeldDelivery> = std::mem::take(&mut *lock(&p.held));
        let mut changes = std::mem::take(&mut *lock(&p.pending));
        for pool in self.pools().values() {
            let mut st = pool.lock();
            let lendable = st.ready.len() - st.unlendable();
            let want = self.lend_ahead(&mut st, p.interval, now);
            if lendable >= want {
                continue;
            }
            let ids: Vec<String> = st
                .ready
                .iter()
                .filter(|c| !c.lendable)
                .take(want - lendable)
                .map(|c| c.created.id.clone())
                .collect();
            drop(st);
            if !ids.is_empty() {
                changes.extend(ids.iter().map(|id| Change::Lendable {
                    container: id.clone(),
                    pool: pool.cfg().name.clone(),
                }));
                promotions.push((pool.clone(), ids));
            }
        }
        if changes.is_empty() && held.is_empty() {
            return true;
        }
        let store = p.store.clone();
        let t0 = std::time::Instant::now();
        let batch = changes.clone();
        let result = tokio::task::spawn_blocking(move || store.commit(&batch)).await;
        let result = match result {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(join) => Err(format!("commit task failed: {join}")),
        };
        p.last_commit_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                p.commits.fetch_add(1, Ordering::Relaxed);
                for (pool, ids) in promotions {
                    pool.lock().promote(&ids);
                    pool.touch();
                }
                for h in held {
                    let mut c = h.container;
                    c.lendable = true;
                    if let Err(Ok(c)) = h.tx.send(Ok(c)) {
                        // The acquire gave up meanwhile; the pool keeps the container.
                        let mut st = h.pool.lock();
                        st.leased -= 1;
                        st.offer(c);
                        drop(st);
                        h.pool.touch();
                    }
                }
                true
            }
            Err(e) => {
                let n = p.commit_failures.fetch_add(1, Ordering::Relaxed) + 1;
                error!(error = %e, failures = n, "state store commit failed; nothing new is lent until a commit succeeds");
                // Keep the changes (promotions are recomputed next round) and the deliveries.
                let keep: Vec<Change> = changes
                    .into_iter()
                    .filter(|c| !matches!(c, Change::Lendable { container, .. } if promotions.iter().any(|(_, ids)| ids.contains(container))))
                    .collect();
                let mut pending = lock(&p.pending);
                let later = std::mem::replace(&mut *pending, keep);
                pending.extend(later);
                drop(pending);
                lock(&p.held).extend(held);
                false
            }
        }
    }

    /// At shutdown, after the token is cancelled: wait for a commit round in flight, so that
    /// the lendable flags in the pools match the store. No round starts after this.
    pub async fn settle_commits(&self) {
        if let Some(p) = &self.persist {
            drop(p.round.lock().await);
        }
    }

    /// At shutdown: give back held cold containers so they are destroyed with the rest.
    pub(crate) fn take_held(&self) -> Vec<(Arc<Pool>, ReadyContainer)> {
        let Some(p) = &self.persist else {
            return Vec::new();
        };
        std::mem::take(&mut *lock(&p.held))
            .into_iter()
            .map(|h| (h.pool, h.container))
            .collect()
    }

    /// Commit whatever is pending, once (at a shutdown that keeps containers). `true` when the
    /// store has everything.
    pub(crate) async fn flush_store(&self) -> bool {
        let Some(p) = &self.persist else { return true };
        let changes = std::mem::take(&mut *lock(&p.pending));
        if changes.is_empty() {
            return true;
        }
        let store = p.store.clone();
        match tokio::task::spawn_blocking(move || store.commit(&changes)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                error!(error = %e, "shutdown: the last commit failed; the next start reconciles with what the store has");
                false
            }
            Err(e) => {
                error!(error = %e, "shutdown: the last commit failed");
                false
            }
        }
    }

    /// At the end of a clean shutdown that left nothing on the engine: forget everything.
    pub(crate) async fn clear_store(&self) {
        let Some(p) = &self.persist else { return };
        lock(&p.pending).clear();
        let store = p.store.clone();
        match tokio::task::spawn_blocking(move || store.commit(&[Change::Clear])).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "shutdown: clearing the state store failed; the next start reconciles")
            }
            Err(e) => warn!(error = %e, "shutdown: clearing the state store failed"),
        }
    }
}
