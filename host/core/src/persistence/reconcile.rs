//! Startup: deal with what an earlier run of this host id left on the engine.
//!
//! Without a state store nothing is known about those containers, so all of them are removed.
//! With one, the daemon reconciles instead, deciding container by container:
//!
//! | the container                                                      | becomes            |
//! |--------------------------------------------------------------------|--------------------|
//! | running, with a persisted lease                                    | that lease again   |
//! | stopped, with a persisted lease that was suspended                 | that lease, suspended |
//! | without a lease, in the lendable set or marked as leased once      | removed            |
//! | running, spec label = current spec and image ID, room in pool      | ready (re-adopted) |
//! | anything else: stale spec or image, unknown pool, stopped, extra   | removed            |
//!
//! The engine-side mark ([`Backend::mark_used`]) means a container that was ever leased is never
//! re-adopted even if the store was lost; the lendable set covers the moment before the mark
//! landed. Containers of other host ids are never listed, so never touched.
//!
//! Every container found is counted against the cap before the daemon serves: kept ones as
//! ready or leased, the rest as removing (removed with the same never-give-up removal as any
//! other), so "the engine holds at most `max_containers`" holds from the first create on. All
//! reads (store, container list, image IDs) happen before any change, so a failed attempt
//! leaves nothing half-done and is simply retried on the next tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Persistence;
use crate::backend::{Backend, BackendError, Baseline};
use crate::caps::EngineIx;
use crate::lease_store::{Change, LeaseRecord};
use crate::lifecycle::{CALL_TIMEOUT, call};
use crate::pool::Pool;

/// What reconcile did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Persisted leases re-attached to their running containers.
    pub reattached: usize,
    /// Ready containers of the earlier run re-adopted into their pools.
    pub adopted: usize,
    /// Containers counted as removing (their removal runs in the background).
    pub destroyed: usize,
    /// Persisted leases whose container is gone.
    pub lost_leases: usize,
}

/// What becomes of one container found at startup.
enum Fate {
    // Boxed: a lease record is large, and most fates are adoptions or removals.
    Reattach(Arc<Pool>, Box<LeaseRecord>),
    Adopt(Arc<Pool>),
    Doom,
}

impl<B: Backend> Persistence<B> {
    /// The startup step of engine `engine`: reconcile with a store, remove everything without.
    /// The refill waits until one engine has done it; an engine serves only once it has.
    pub(crate) async fn startup_cleanup(&self, engine: EngineIx) {
        let result = if !self.s.persist.enabled() {
            self.remove_leftovers(engine).await
        } else {
            self.reconcile_engine(engine).await
        };
        let name = self.s.fleet.name(engine).to_string();
        match result {
            Ok(r) => {
                info!(
                    engine = %name,
                    reattached = r.reattached,
                    adopted = r.adopted,
                    removing = r.destroyed,
                    lost_leases = r.lost_leases,
                    "startup: what an earlier run left is accounted for"
                );
                // What it holds is counted now: the slots held for it while unseen go back.
                self.s.fleet.cleaned_up(engine);
                self.s.rt.mark_swept();
            }
            Err(e) => warn!(engine = %name, error = %e, "startup reconcile failed; will retry"),
        }
    }

    /// Without a store: every container of this host id is an orphan, counted and removed.
    async fn remove_leftovers(&self, engine: EngineIx) -> Result<ReconcileReport, BackendError> {
        let existing = call(CALL_TIMEOUT, self.s.fleet.backend(engine).list()).await?;
        let mut report = ReconcileReport::default();
        for e in existing {
            self.doom(None, &e, engine);
            report.destroyed += 1;
        }
        Ok(report)
    }

    /// Re-attach leases, re-adopt what can be kept, remove the rest (see the module doc), on
    /// engine `engine`: its own containers, and the persisted leases recorded on it (a record
    /// without an engine, or of an engine no longer configured, belongs to the first).
    async fn reconcile_engine(&self, engine: EngineIx) -> Result<ReconcileReport, BackendError> {
        let s = &self.s;
        let persisted = s
            .persist
            .group_commit()
            .expect("reconcile runs with a store")
            .load()
            .await
            .map_err(|e| BackendError::Unavailable(format!("state store: {e}")))?;
        // Before the adoptions below, which fill each pool up to its `max_ready`.
        self.restore_scales(&persisted.scales);
        let backend = s.fleet.backend(engine);
        let existing = call(CALL_TIMEOUT, backend.list()).await?;
        let mut image_ids: HashMap<String, Option<String>> = HashMap::new();
        for pool in s.books.serving().values() {
            let id = call(CALL_TIMEOUT, backend.image_id(&pool.cfg().spec.image)).await?;
            image_ids.insert(pool.name(), id);
        }

        // Decide, reading only.
        let mut leases_by_container: BTreeMap<String, LeaseRecord> = persisted
            .leases
            .values()
            .filter(|r| {
                r.engine
                    .as_deref()
                    .and_then(|n| s.fleet.named(n))
                    .unwrap_or(0)
                    == engine
            })
            .map(|r| (r.container_id.clone(), r.clone()))
            .collect();
        // Re-adoption fills a pool up to `max_ready` (its scale override's, restored above, when
        // one holds), counting what other engines gave it.
        let mut adopted_per_pool: HashMap<String, u32> = s
            .books
            .serving()
            .values()
            .map(|p| (p.name(), p.lock().counts().ready))
            .collect();
        let mut fates = Vec::with_capacity(existing.len());
        for e in existing {
            let pool = e.pool.as_deref().and_then(|p| s.books.get(p));
            let fate = if let Some(rec) = leases_by_container.remove(&e.id) {
                match pool {
                    // A suspended lease's container is stopped on purpose: it waits, with its
                    // checkpoint, for a resume.
                    Some(pool) if e.running || rec.suspended_at_ms.is_some() => {
                        Fate::Reattach(pool, Box::new(rec))
                    }
                    _ => {
                        warn!(lease = %rec.lease_id, container = %e.id, "persisted lease dropped: its container stopped or its pool is gone");
                        s.persist.record(|| Change::DropLease(rec.lease_id));
                        Fate::Doom
                    }
                }
            } else if e.used || persisted.lendable.contains_key(&e.id) {
                // It was leased once, or may have reached a client whose lease was not yet
                // committed: never lent again.
                Fate::Doom
            } else {
                match pool.filter(|pool| {
                    let cfg = pool.cfg();
                    let max_ready = pool.lock().sizes(&cfg).1;
                    let image_id = image_ids.get(&cfg.name).cloned().flatten();
                    e.running
                        && image_id.as_deref() == Some(e.image_id.as_str())
                        && e.fingerprint.as_deref()
                            == Some(cfg.spec.fingerprint(&e.image_id).as_str())
                        && adopted_per_pool.get(&cfg.name).copied().unwrap_or(0) < max_ready
                }) {
                    Some(pool) => {
                        *adopted_per_pool.entry(pool.name()).or_default() += 1;
                        Fate::Adopt(pool)
                    }
                    None => Fate::Doom,
                }
            };
            fates.push((e, fate));
        }
        // A container kept for reuse needs its baseline: it was never lent, so it is clean now.
        let mut baselines: HashMap<String, Arc<Baseline>> = HashMap::new();
        for (e, fate) in &fates {
            if let Fate::Adopt(pool) = fate
                && pool.cfg().reuse.is_some()
                && let Ok(b) = call(CALL_TIMEOUT, backend.baseline(&e.id)).await
            {
                baselines.insert(e.id.clone(), Arc::new(b));
            }
        }

        // Apply.
        let mut report = ReconcileReport::default();
        let now = Instant::now();
        for (e, fate) in fates {
            match fate {
                Fate::Reattach(pool, rec) => {
                    if self.reattach(&pool, &e, engine, *rec, now) {
                        report.reattached += 1;
                    } else {
                        self.doom(None, &e, engine);
                        report.destroyed += 1;
                    }
                }
                Fate::Adopt(pool) => {
                    let baseline = baselines.remove(&e.id);
                    if self.adopt(&pool, &e, engine, now, baseline) {
                        report.adopted += 1;
                    } else {
                        self.doom(Some(&pool), &e, engine);
                        report.destroyed += 1;
                    }
                }
                Fate::Doom => {
                    let pool = e.pool.as_deref().and_then(|p| s.books.get(p));
                    self.doom(pool.as_ref(), &e, engine);
                    report.destroyed += 1;
                }
            }
        }
        for (_, rec) in leases_by_container {
            warn!(lease = %rec.lease_id, container = %rec.container_id, "persisted lease dropped: its container no longer exists");
            s.persist.record(|| Change::DropLease(rec.lease_id));
            report.lost_leases += 1;
        }
        // Lendable entries whose container no longer exists; the others are forgotten when
        // their removal succeeds. Only once every engine was reconciled: an entry of an engine
        // not seen yet must keep its container from being re-adopted there.
        if s.fleet.others_cleaned(engine) {
            let present: std::collections::HashSet<String> =
                s.accounted().into_iter().filter_map(|(_, id)| id).collect();
            for id in persisted.lendable.keys() {
                if !present.contains(id) {
                    s.persist.record(|| Change::Forget(id.clone()));
                }
            }
        }
        for pool in s.books.serving().values() {
            if let Some(id) = image_ids.get(&pool.name()) {
                pool.lock().set_image_id(engine, id.clone());
            }
            pool.touch();
        }
        Ok(report)
    }
}
