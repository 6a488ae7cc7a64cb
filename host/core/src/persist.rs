//! Group commit: lease changes and promotions to the lendable set are batched and written by
//! one task every `commit_interval`, so no acquire ever waits for an fsync.
//!
//! The acquire path only records a [`Change`] in [`Pending`] under a mutex. The committer takes
//! the batch, adds promotions (ready containers it makes lendable, a few per pool, enough for the
//! acquires expected before the next commit), writes everything in one transaction on tokio's
//! blocking pool, and only then marks the promoted containers lendable. An acquire that finds
//! ready containers but none lendable queues and wakes the committer at once, so it waits one
//! fsync, not a create. See [`crate::store`] for why this keeps a container from reaching two
//! clients across a crash.
//!
//! While the store fails, nothing new is lent, and pending changes are *coalesced*: one entry
//! per lease and per container, the latest winning, and a lease or container the store never
//! held is simply dropped when it ends. So the backlog never outgrows the live state, however
//! long the store stays down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep};
use tracing::{error, warn};

use crate::backend::{Backend, BackendError};
use crate::manager::{Manager, lock};
use crate::pool::{Delivery, DeliveryError, LeaseEnd, Pool, ReadyContainer};
use crate::store::{Change, LeaseRecord, LeaseStore, Persisted, StoreError};

/// Lendable ready containers kept per pool at least, beyond what the acquire rate asks for.
const LEND_FLOOR: usize = 2;

/// A cold-created container waiting for the commit that makes it lendable, and its acquire.
struct HeldDelivery {
    pool: Arc<Pool>,
    container: ReadyContainer,
    tx: oneshot::Sender<Delivery>,
}

/// Changes not yet committed, one per key (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Lease ID → the record to put, or `None` to drop it.
    leases: BTreeMap<String, Option<LeaseRecord>>,
    /// Container ID → its pool to add to the lendable set, or `None` to forget it.
    lendable: BTreeMap<String, Option<String>>,
    /// What the store holds, or may hold (a batch in flight): only those need a drop or forget.
    stored_leases: BTreeSet<String>,
    stored_lendable: BTreeSet<String>,
}

impl Pending {
    fn push(&mut self, c: Change) {
        match c {
            Change::PutLease(r) => {
                self.leases.insert(r.lease_id.clone(), Some(r));
            }
            Change::DropLease(id) => {
                if self.stored_leases.contains(&id) {
                    self.leases.insert(id, None);
                } else {
                    self.leases.remove(&id);
                }
            }
            Change::Lendable { container, pool } => {
                self.lendable.insert(container, Some(pool));
            }
            Change::Forget(id) => {
                if self.stored_lendable.contains(&id) {
                    self.lendable.insert(id, None);
                } else {
                    self.lendable.remove(&id);
                }
            }
            Change::Clear => {
                self.leases.clear();
                self.lendable.clear();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.leases.len() + self.lendable.len()
    }

    /// Take everything for a commit. What it puts counts as possibly stored from now on.
    fn take(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.len());
        for (id, pool) in std::mem::take(&mut self.lendable) {
            match pool {
                Some(pool) => {
                    self.stored_lendable.insert(id.clone());
                    out.push(Change::Lendable {
                        container: id,
                        pool,
                    });
                }
                None => out.push(Change::Forget(id)),
            }
        }
        for (id, rec) in std::mem::take(&mut self.leases) {
            match rec {
                Some(r) => {
                    self.stored_leases.insert(id);
                    out.push(Change::PutLease(r));
                }
                None => out.push(Change::DropLease(id)),
            }
        }
        out
    }

    /// The batch is in the store: drops and forgets are final.
    fn committed(&mut self, batch: &[Change]) {
        for c in batch {
            match c {
                Change::DropLease(id) if !self.leases.contains_key(id) => {
                    self.stored_leases.remove(id);
                }
                Change::Forget(id) if !self.lendable.contains_key(id) => {
                    self.stored_lendable.remove(id);
                }
                _ => {}
            }
        }
    }

    /// The batch failed: put it back under whatever changed since (the newer change wins).
    fn failed(&mut self, batch: Vec<Change>) {
        for c in batch {
            match c {
                Change::PutLease(r) => {
                    self.leases.entry(r.lease_id.clone()).or_insert(Some(r));
                }
                Change::DropLease(id) => {
                    self.leases.entry(id).or_insert(None);
                }
                Change::Lendable { container, pool } => {
                    self.lendable.entry(container).or_insert(Some(pool));
                }
                Change::Forget(id) => {
                    self.lendable.entry(id).or_insert(None);
                }
                Change::Clear => {}
            }
        }
    }
}

/// The manager's persistence state; `None` in the manager when no `state_dir` is configured.
pub(crate) struct Persister {
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) interval: Duration,
    pending: std::sync::Mutex<Pending>,
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

    /// What the store holds at startup: later drops and forgets of these must reach it.
    pub(crate) fn loaded_into_pending(&self, p: &Persisted) {
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

impl<B: Backend> Manager<B> {
    /// Whether leases are persisted (a `state_dir` is configured).
    pub fn persists(&self) -> bool {
        self.persist.is_some()
    }

    /// Persistence figures; `None` when nothing is persisted.
    pub fn persist_stats(&self) -> Option<PersistStats> {
        self.persist.as_ref().map(|p| PersistStats {
            commits: p.commits.load(Ordering::Relaxed),
            commit_failures: p.commit_failures.load(Ordering::Relaxed),
            last_commit_ms: p.last_commit_us.load(Ordering::Relaxed) as f64 / 1000.0,
            commit_interval_ms: p.interval.as_millis() as u64,
            pending: lock(&p.pending).len(),
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
            pool: pool.name(),
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
                    biased;
                    _ = self.cancel.cancelled() => return,
                    _ = sleep(p.interval * 10) => {}
                }
            }
        }
    }

    /// One group commit. Returns `false` when the store failed.
    pub(crate) async fn commit_round(self: &Arc<Self>) -> bool {
        let Some(p) = &self.persist else { return true };
        let _round = p.round.lock().await;
        if self.cancel.is_cancelled() {
            return true; // shutdown flushes what is pending itself
        }
        let now = Instant::now();
        let window = (p.interval * 4).max(Duration::from_millis(100));
        let decay = 0.5f64.powf(p.interval.as_secs_f64() / 30.0);
        let mut promotions: Vec<(Arc<Pool>, Vec<String>)> = Vec::new();
        // Held deliveries first, then the changes: a delivery's `Lendable` change is queued
        // before the delivery, so taking in this order never delivers ahead of its commit.
        let held: Vec<HeldDelivery> = std::mem::take(&mut *lock(&p.held));
        let mut changes = lock(&p.pending).take();
        for pool in self.pools().values() {
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
                promotions.push((pool.clone(), ids));
            }
        }
        if changes.is_empty() && held.is_empty() {
            return true;
        }
        {
            // Promotions may be in the store from now on, as far as later forgets are concerned.
            let mut pend = lock(&p.pending);
            for (_, ids) in &promotions {
                pend.stored_lendable.extend(ids.iter().cloned());
            }
        }
        let t0 = std::time::Instant::now();
        let batch = changes.clone();
        let result = p.run(move |s| s.commit(&batch)).await;
        p.last_commit_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                p.commits.fetch_add(1, Ordering::Relaxed);
                lock(&p.pending).committed(&changes);
                for (pool, ids) in promotions {
                    pool.lock().promote(&ids);
                    pool.touch();
                }
                for h in held {
                    let mut c = h.container;
                    c.lendable = true;
                    if self.died_recently(&c.created.id) {
                        // It died while it waited for this commit, in no list a death notice
                        // reaches: removed, and its acquire told so.
                        h.pool.lock().lease_ended(c.key(), LeaseEnd::Other);
                        self.spawn_removal_of(&h.pool, &c, "died before it was handed out");
                        let _ = h.tx.send(Err(DeliveryError::Create(BackendError::Create {
                            image: h.pool.cfg().spec.image.clone(),
                            message: format!(
                                "container {} died before it was handed out",
                                c.created.name
                            ),
                        })));
                        h.pool.touch();
                        continue;
                    }
                    if let Err(Ok(c)) = h.tx.send(Ok(c)) {
                        // The acquire gave up meanwhile; the pool keeps the container.
                        h.pool.lock().give_back(c);
                        h.pool.touch();
                    }
                }
                true
            }
            Err(e) => {
                let n = p.commit_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    error!(error = %e, failures = n, "state store commit failed; nothing new is lent until a commit succeeds");
                }
                // Keep the changes (promotions are recomputed next round) and the deliveries.
                let keep: Vec<Change> = changes
                    .into_iter()
                    .filter(|c| !matches!(c, Change::Lendable { container, .. } if promotions.iter().any(|(_, ids)| ids.contains(container))))
                    .collect();
                lock(&p.pending).failed(keep);
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

    /// At shutdown: give back held cold containers so they are removed with the rest.
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
        let changes = lock(&p.pending).take();
        if changes.is_empty() {
            return true;
        }
        match p.run(move |s| s.commit(&changes)).await {
            Ok(()) => true,
            Err(e) => {
                error!(error = %e, "shutdown: the last commit failed; the next start reconciles with what the store has");
                false
            }
        }
    }

    /// At the end of a clean shutdown that left nothing on the engine: forget everything.
    pub(crate) async fn clear_store(&self) {
        let Some(p) = &self.persist else { return };
        lock(&p.pending).push(Change::Clear);
        if let Err(e) = p.run(|s| s.commit(&[Change::Clear])).await {
            warn!(error = %e, "shutdown: clearing the state store failed; the next start reconciles");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> LeaseRecord {
        LeaseRecord {
            lease_id: id.into(),
            pool: "p".into(),
            owner: None,
            container_id: format!("c-{id}"),
            container_name: String::new(),
            image: String::new(),
            image_id: String::new(),
            source: "pool".into(),
            acquired_at_ms: 0,
            expires_at_ms: 0,
            born_at_ms: 0,
            uses: 1,
        }
    }

    #[test]
    fn a_lease_the_store_never_held_leaves_nothing_behind() {
        let mut p = Pending::default();
        for i in 0..10_000 {
            let id = format!("l{i}");
            p.push(Change::PutLease(rec(&id)));
            p.push(Change::PutLease(rec(&id))); // a renewal
            p.push(Change::DropLease(id.clone()));
            p.push(Change::Lendable {
                container: format!("c{i}"),
                pool: "p".into(),
            });
            p.push(Change::Forget(format!("c{i}")));
        }
        assert_eq!(p.len(), 0, "churn against a failing store must not pile up");
    }

    #[test]
    fn a_failed_batch_comes_back_under_newer_changes() {
        let mut p = Pending::default();
        p.push(Change::PutLease(rec("a")));
        let batch = p.take();
        // While the batch is in flight, the lease ends: its drop must survive the failure.
        p.push(Change::DropLease("a".into()));
        p.failed(batch);
        let next = p.take();
        assert_eq!(next, vec![Change::DropLease("a".into())]);
        p.committed(&next);
        assert!(p.stored_leases.is_empty());
    }
}
