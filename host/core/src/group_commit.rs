//! Group commit: lease changes and promotions to the lendable set are batched and written by
//! one task every `commit_interval`, so no acquire ever waits for an fsync.
//!
//! The acquire path only records a [`Change`] in [`Pending`] under a mutex. The committer takes
//! the batch, adds promotions (ready containers it makes lendable, a few per pool, enough for the
//! acquires expected before the next commit), writes everything in one transaction on tokio's
//! blocking pool, and only then marks the promoted containers lendable. An acquire that finds
//! ready containers but none lendable queues and wakes the committer at once, so it waits one
//! fsync, not a create. See [`crate::lease_store`] for why this keeps a container from reaching two
//! clients across a crash.
//!
//! While the store fails, nothing new is lent, and pending changes are *coalesced*: one entry
//! per lease and per container, the latest winning, and a lease or container the store never
//! held is simply dropped when it ends. So the backlog never outgrows the live state, however
//! long the store stays down.
//!
//! A scale override is the one change a client waits for: `GroupCommit::commit_now`
//! (`group_commit/scales.rs`) writes it with everything pending, under the round's lock, so it
//! lands in the order it was made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::lease_store::{Change, LeaseStore, Persisted, StoreError};
use crate::pool::{Delivery, Pool, ReadyContainer};
use crate::sync::lock;

mod pending;
mod scales;

use pending::Pending;

/// Lendable ready containers kept per pool at least, beyond what the acquire rate asks for.
const LEND_FLOOR: usize = 2;

/// A cold-created container waiting for the commit that makes it lendable, and its acquire.
pub(crate) struct HeldDelivery {
    pub pool: Arc<Pool>,
    pub container: ReadyContainer,
    pub tx: oneshot::Sender<Delivery>,
}

/// The group commit of one manager; the manager holds none when no `state_dir` is configured
/// (see `shared/persist.rs`). Its fields are changed only by its methods, here.
pub(crate) struct GroupCommit {
    store: Arc<dyn LeaseStore>,
    interval: Duration,
    pending: std::sync::Mutex<Pending>,
    held: std::sync::Mutex<Vec<HeldDelivery>>,
    urgent: Notify,
    commits: AtomicU64,
    commit_failures: AtomicU64,
    /// Duration of the last commit, in microseconds.
    last_commit_us: AtomicU64,
    /// What the store held at startup, taken once by reconcile.
    loaded: std::sync::Mutex<Option<Persisted>>,
    /// Held for a whole commit round; shutdown takes it to wait out a round in flight, whose
    /// promotions must land before it decides which containers were lendable.
    round: tokio::sync::Mutex<()>,
    /// Whether the scale overrides the store held at startup were applied to the pools.
    scales_restored: std::sync::atomic::AtomicBool,
    /// Pools whose override a reload cleared (or whose pool it removed) before the restore:
    /// the restore must not bring theirs back. Held for the whole restore, so a reload's clear
    /// lands wholly before it or wholly after.
    cleared_early: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl GroupCommit {
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
            scales_restored: Default::default(),
            cleared_early: Default::default(),
        }
    }

    /// The group-commit period.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// What the store held at startup, read once (each engine's reconcile asks).
    pub(crate) async fn load(&self) -> Result<Persisted, String> {
        if let Some(done) = lock(&self.loaded).clone() {
            return Ok(done);
        }
        let store = self.store.clone();
        let loaded = if store.blocking() {
            tokio::task::spawn_blocking(move || store.load())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        } else {
            store.load().map_err(|e| e.to_string())?
        };
        self.loaded_into_pending(&loaded);
        *lock(&self.loaded) = Some(loaded.clone());
        Ok(loaded)
    }

    /// What the store holds at startup: later drops and forgets of these must reach it.
    fn loaded_into_pending(&self, p: &Persisted) {
        let mut pend = lock(&self.pending);
        pend.stored_leases.extend(p.leases.keys().cloned());
        pend.stored_lendable.extend(p.lendable.keys().cloned());
    }

    /// Run one store call: inline for a store that never blocks, else on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LeaseStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        if !store.blocking() {
            return f(&*store).map_err(|e| e.to_string());
        }
        match tokio::task::spawn_blocking(move || f(&*store)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(join) => Err(format!("store task failed: {join}")),
        }
    }
}

/// How a commit round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// The store has the batch (or there was nothing to write).
    Committed,
    /// The store failed; the batch waits for the next round.
    Failed,
}

/// Persistence figures for the stats and metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PersistStats {
    /// Commits that succeeded since startup.
    pub commits: u64,
    /// Commits that failed since startup.
    pub commit_failures: u64,
    /// How long the last commit attempt took, in milliseconds (fractional).
    pub last_commit_ms: f64,
    /// The group-commit period, in milliseconds.
    pub commit_interval_ms: u64,
    /// Changes waiting for the next commit (coalesced: at most one per lease and container).
    pub pending: usize,
}

impl GroupCommit {
    /// Persistence figures now.
    pub(crate) fn stats(&self) -> PersistStats {
        PersistStats {
            commits: self.commits.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
            last_commit_ms: self.last_commit_us.load(Ordering::Relaxed) as f64 / 1000.0,
            commit_interval_ms: self.interval.as_millis() as u64,
            pending: lock(&self.pending).len(),
        }
    }

    /// Queue a change for the next commit.
    pub(crate) fn record(&self, change: Change) {
        lock(&self.pending).push(change);
    }

    /// Ask for a commit now rather than at the next interval.
    pub(crate) fn urge(&self) {
        self.urgent.notify_one();
    }

    /// Resolves when a commit is urged.
    pub(crate) async fn urged(&self) {
        self.urgent.notified().await;
    }

    /// Hold a cold-created container until a commit made it lendable; the round then hands it
    /// to the caller's delivery. The caller has counted it as leased.
    pub(crate) fn hold(
        &self,
        pool: &Arc<Pool>,
        container: ReadyContainer,
        tx: oneshot::Sender<Delivery>,
    ) {
        self.record(Change::Lendable {
            container: container.created.id.clone(),
            pool: pool.name(),
        });
        lock(&self.held).push(HeldDelivery {
            pool: pool.clone(),
            container,
            tx,
        });
        self.urgent.notify_one();
    }

    /// One group commit: the pending changes, plus promotions to the lendable set in each of
    /// `pools`, in one store transaction. Once it is in, the promoted containers become
    /// lendable and each held delivery goes to `deliver`, all before the round ends (shutdown
    /// waits for a round in flight, see [`GroupCommit::settle`]).
    pub(crate) async fn round(
        &self,
        pools: impl IntoIterator<Item = Arc<Pool>>,
        cancel: &CancellationToken,
        mut deliver: impl FnMut(HeldDelivery),
    ) -> Round {
        let _round = self.round.lock().await;
        if cancel.is_cancelled() {
            return Round::Committed; // shutdown flushes what is pending itself
        }
        let now = Instant::now();
        let window = (self.interval * 4).max(Duration::from_millis(100));
        let decay = 0.5f64.powf(self.interval.as_secs_f64() / 30.0);
        let mut promotions: Vec<(Arc<Pool>, Vec<String>)> = Vec::new();
        // Held deliveries first, then the changes: a delivery's `Lendable` change is queued
        // before the delivery, so taking in this order never delivers ahead of its commit.
        let held: Vec<HeldDelivery> = std::mem::take(&mut *lock(&self.held));
        let mut changes = lock(&self.pending).take();
        for pool in pools {
            let mut st = pool.lock();
            let lendable = st.lendable();
            let want = st.lend_ahead(window, decay, LEND_FLOOR, now);
            if lendable >= want {
                continue;
            }
            let ids: Vec<String> = st
                .ready()
                .filter(|c| !c.lendable)
                .take(want - lendable)
                .map(|c| c.created.id.clone())
                .collect();
            drop(st);
            if !ids.is_empty() {
                changes.extend(ids.iter().map(|id| Change::Lendable {
                    container: id.clone(),
                    pool: pool.name(),
                }));
                promotions.push((pool, ids));
            }
        }
        if changes.is_empty() && held.is_empty() {
            return Round::Committed;
        }
        {
            // Promotions may be in the store from now on, as far as later forgets are concerned.
            let mut pend = lock(&self.pending);
            for (_, ids) in &promotions {
                pend.promoting(ids);
            }
        }
        let t0 = std::time::Instant::now();
        let batch = changes.clone();
        let result = self.run(move |s| s.commit(&batch)).await;
        self.last_commit_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                lock(&self.pending).committed(&changes);
                for (pool, ids) in promotions {
                    pool.lock().promote(&ids);
                    pool.touch();
                }
                for mut h in held {
                    h.container.lendable = true;
                    deliver(h);
                }
                Round::Committed
            }
            Err(e) => {
                let n = self.commit_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    error!(error = %e, failures = n, "state store commit failed; nothing new is lent until a commit succeeds");
                }
                // Keep the changes (promotions are recomputed next round) and the deliveries.
                let keep: Vec<Change> = changes
                    .into_iter()
                    .filter(|c| !matches!(c, Change::Lendable { container, .. } if promotions.iter().any(|(_, ids)| ids.contains(container))))
                    .collect();
                lock(&self.pending).failed(keep);
                lock(&self.held).extend(held);
                Round::Failed
            }
        }
    }

    /// At shutdown, after the token is cancelled: wait for a round in flight, so that the
    /// lendable flags in the pools match the store. No round starts after this.
    pub(crate) async fn settle(&self) {
        drop(self.round.lock().await);
    }

    /// At shutdown: the held cold containers, to be removed with the rest.
    pub(crate) fn take_held(&self) -> Vec<(Arc<Pool>, ReadyContainer)> {
        std::mem::take(&mut *lock(&self.held))
            .into_iter()
            .map(|h| (h.pool, h.container))
            .collect()
    }

    /// Commit whatever is pending, once (at a shutdown that keeps containers). `true` when the
    /// store has everything.
    pub(crate) async fn flush(&self) -> bool {
        let changes = lock(&self.pending).take();
        if changes.is_empty() {
            return true;
        }
        match self.run(move |s| s.commit(&changes)).await {
            Ok(()) => true,
            Err(e) => {
                error!(error = %e, "shutdown: the last commit failed; the next start reconciles with what the store has");
                false
            }
        }
    }

    /// At the end of a clean shutdown that left nothing on the engine: forget every lease and
    /// the lendable set, writing the scale overrides still pending (they outlive the clear).
    pub(crate) async fn clear(&self) {
        let mut changes = lock(&self.pending).take_scales();
        lock(&self.pending).push(Change::Clear);
        changes.push(Change::Clear);
        if let Err(e) = self.run(move |s| s.commit(&changes)).await {
            warn!(error = %e, "shutdown: clearing the state store failed; the next start reconciles");
        }
    }
}
