//! Startup: deal with what an earlier run of this host id left on the engine.
//!
//! Without a state store nothing is known about those containers, so all of them are swept.
//! With one, the daemon reconciles instead, deciding container by container:
//!
//! | the container                                                    | becomes            |
//! |------------------------------------------------------------------|--------------------|
//! | running, with a persisted lease                                  | that lease again   |
//! | in the lendable set without a lease (it may have been lent)      | destroyed          |
//! | running, spec label = current spec and image ID, room in pool    | ready (re-adopted) |
//! | anything else: stale spec or image, unknown pool, stopped, extra | destroyed          |
//!
//! Containers of other host ids are never listed, so never touched. All reads (store, container
//! list, image IDs) happen before any change, so a failed attempt leaves nothing half-done and
//! is simply retried on the next tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::{Backend, BackendError, Created, Existing};
use crate::lease::Lease;
use crate::manager::{Manager, lock};
use crate::pool::{Pool, ReadyContainer};
use crate::store::{Change, LeaseRecord, Persisted, from_unix_ms};
use warmpool_policy::AcquireSource;

/// What reconcile did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub reattached: usize,
    pub adopted: usize,
    pub destroyed: usize,
    /// Persisted leases whose container is gone.
    pub lost_leases: usize,
}

const DESTROY_PARALLELISM: usize = 8;

impl<B: Backend> Manager<B> {
    /// The startup step the refill waits for: reconcile with a store, sweep without.
    pub(crate) async fn startup_cleanup(self: &Arc<Self>) {
        if self.persist.is_none() {
            match self.backend.sweep().await {
                Ok(n) => {
                    info!(
                        removed = n,
                        "startup sweep removed containers left by an earlier run"
                    );
                    self.swept.send_replace(true);
                }
                Err(e) => warn!(error = %e, "startup sweep failed; will retry"),
            }
            return;
        }
        match self.reconcile().await {
            Ok(r) => {
                info!(
                    reattached = r.reattached,
                    adopted = r.adopted,
                    destroyed = r.destroyed,
                    lost_leases = r.lost_leases,
                    "startup reconcile done"
                );
                self.swept.send_replace(true);
            }
            Err(e) => warn!(error = %e, "startup reconcile failed; will retry"),
        }
    }

    async fn load_persisted(&self) -> Result<Persisted, String> {
        let p = self.persist.as_ref().expect("reconcile runs with a store");
        if let Some(done) = lock(&p.loaded).clone() {
            return Ok(done);
        }
        let store = p.store.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        *lock(&p.loaded) = Some(loaded.clone());
        Ok(loaded)
    }

    /// Re-attach leases, re-adopt what can be kept, destroy the rest (see the module doc).
    pub async fn reconcile(self: &Arc<Self>) -> Result<ReconcileReport, BackendError> {
        let persisted = self
            .load_persisted()
            .await
            .map_err(|e| BackendError::Unavailable(format!("state store: {e}")))?;
        let existing = self.backend.list().await?;
        let mut image_ids: HashMap<String, Option<String>> = HashMap::new();
        for pool in self.pools().values() {
            image_ids.insert(
                pool.cfg().name.clone(),
                self.backend.image_id(&pool.cfg().spec.image).await?,
            );
        }

        let mut leases_by_container: BTreeMap<String, LeaseRecord> = persisted
            .leases
            .values()
            .map(|r| (r.container_id.clone(), r.clone()))
            .collect();
        let mut report = ReconcileReport::default();
        let mut changes = Vec::new();
        let mut doomed = Vec::new();
        let mut adopted_per_pool: HashMap<String, u32> = HashMap::new();
        let now = Instant::now();
        let wall = SystemTime::now();

        for e in existing {
            let pool = e.pool.as_deref().and_then(|p| self.pool(p));
            if let Some(rec) = leases_by_container.remove(&e.id) {
                match pool {
                    Some(pool) if e.running => {
                        self.reattach(&pool, &e, rec, now, wall);
                        report.reattached += 1;
                    }
                    _ => {
                        warn!(lease = %rec.lease_id, container = %e.id, "persisted lease dropped: its container stopped or its pool is gone");
                        changes.push(Change::DropLease(rec.lease_id));
                        report.lost_leases += 1;
                        doomed.push(e.id);
                    }
                }
                continue;
            }
            if persisted.lendable.contains_key(&e.id) {
                // It may have reached a client whose lease was not yet committed.
                doomed.push(e.id);
                continue;
            }
            let adoptable = pool.as_ref().filter(|pool| {
                let image_id = image_ids.get(&pool.cfg().name).cloned().flatten();
                e.running
                    && image_id.as_deref() == Some(e.image_id.as_str())
                    && e.fingerprint.as_deref()
                        == Some(pool.cfg().spec.fingerprint(&e.image_id).as_str())
                    && adopted_per_pool.get(&pool.cfg().name).copied().unwrap_or(0)
                        < pool.cfg().max_ready
            });
            match adoptable {
                Some(pool) if self.cap.reserve(1) == 1 => {
                    *adopted_per_pool.entry(pool.cfg().name.clone()).or_default() += 1;
                    self.adopt(pool, &e, now, wall);
                    report.adopted += 1;
                }
                _ => doomed.push(e.id),
            }
        }
        for (_, rec) in leases_by_container {
            warn!(lease = %rec.lease_id, container = %rec.container_id, "persisted lease dropped: its container no longer exists");
            changes.push(Change::DropLease(rec.lease_id));
            report.lost_leases += 1;
        }
        // The lendable set keeps only containers that still exist and are kept (leased).
        let kept: std::collections::HashSet<String> = lock(&self.leases)
            .values()
            .map(|l| l.container.created.id.clone())
            .collect();
        for id in persisted.lendable.keys() {
            if !kept.contains(id) {
                changes.push(Change::Forget(id.clone()));
            }
        }
        self.record_all(changes);
        for pool in self.pools().values() {
            if let Some(Some(id)) = image_ids.get(&pool.cfg().name) {
                pool.lock().current_image_id = Some(id.clone());
            }
            pool.touch();
        }
        report.destroyed = doomed.len();
        let backend = &self.backend;
        let mut removals = futures_util::stream::iter(doomed)
            .map(|id| async move { (backend.destroy(&id).await, id) })
            .buffer_unordered(DESTROY_PARALLELISM);
        while let Some((res, id)) = removals.next().await {
            if let Err(e) = res {
                warn!(container = %id, error = %e, "reconcile could not remove a container");
            }
        }
        Ok(report)
    }

    fn record_all(&self, changes: Vec<Change>) {
        for c in changes {
            self.record(|| c);
        }
    }

    fn reattach(
        &self,
        pool: &Arc<Pool>,
        e: &Existing,
        rec: LeaseRecord,
        now: Instant,
        wall: SystemTime,
    ) {
        // A persisted lease is honoured even past the cap: its container exists already.
        if self.cap.reserve(1) == 0 {
            self.cap.force(1);
        }
        let until = |ms: u64| {
            from_unix_ms(ms)
                .duration_since(wall)
                .unwrap_or(Duration::ZERO)
        };
        let age = wall
            .duration_since(from_unix_ms(rec.born_at_ms))
            .unwrap_or(Duration::ZERO);
        let lease = Lease {
            id: rec.lease_id.clone(),
            pool: pool.clone(),
            container: ReadyContainer {
                created: created_of(e),
                ready_at: now,
                born: now.checked_sub(age).unwrap_or(now),
                uses: rec.uses,
                lendable: true,
                // A lease's container is never reused across a spec change (see reuse).
                generation: pool.generation(),
            },
            source: if rec.source == "cold" {
                AcquireSource::Cold
            } else {
                AcquireSource::Pool
            },
            acquire_us: 0,
            acquired_at: from_unix_ms(rec.acquired_at_ms),
            expires: now + until(rec.expires_at_ms),
            gone: None,
            owner: rec.owner.clone(),
        };
        pool.lock().leased += 1;
        info!(lease = %rec.lease_id, container = %e.name, pool = %pool.cfg().name, "lease re-attached after restart");
        self.emit(
            "leased",
            &pool.cfg().name,
            Some(&e.id),
            Some(&rec.lease_id),
            Some("re-attached after restart".into()),
        );
        lock(&self.leases).insert(rec.lease_id, lease);
    }

    fn adopt(&self, pool: &Arc<Pool>, e: &Existing, now: Instant, wall: SystemTime) {
        let age = wall.duration_since(e.created).unwrap_or(Duration::ZERO);
        let mut st = pool.lock();
        st.counters.adopted_total += 1;
        st.ready.push_back(ReadyContainer {
            created: created_of(e),
            ready_at: now,
            born: now.checked_sub(age).unwrap_or(now),
            uses: 0,
            lendable: false,
            generation: pool.generation(),
        });
        drop(st);
        info!(container = %e.name, pool = %pool.cfg().name, "ready container re-adopted after restart");
        self.emit(
            "ready",
            &pool.cfg().name,
            Some(&e.id),
            None,
            Some("re-adopted after restart".into()),
        );
    }
}

fn created_of(e: &Existing) -> Created {
    Created {
        id: e.id.clone(),
        name: e.name.clone(),
        image: e.image.clone(),
        image_id: e.image_id.clone(),
    }
}
