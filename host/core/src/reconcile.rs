//! Startup: deal with what an earlier run of this host id left on the engine.
//!
//! Without a state store nothing is known about those containers, so all of them are removed.
//! With one, the daemon reconciles instead, deciding container by container:
//!
//! | the container                                                      | becomes            |
//! |--------------------------------------------------------------------|--------------------|
//! | running, with a persisted lease                                    | that lease again   |
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
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::{Backend, BackendError, Baseline, Created, Existing};
use crate::caps::EngineIx;
use crate::lease::Lease;
use crate::lease_store::{Change, LeaseRecord, Persisted, from_unix_ms};
use crate::lifecycle::{CALL_TIMEOUT, Holder};
use crate::manager::Manager;
use crate::pool::{Doomed, Pool, ReadyContainer};
use crate::sync::lock;
use warmpool_policy::AcquireSource;

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

enum Fate {
    // Boxed: a lease record is large, and most fates are adoptions or removals.
    Reattach(Arc<Pool>, Box<LeaseRecord>),
    Adopt(Arc<Pool>),
    Doom,
}

impl<B: Backend> Manager<B> {
    /// The startup step of engine `engine`: reconcile with a store, remove everything without.
    /// The refill waits until one engine has done it; an engine serves only once it has.
    pub(crate) async fn startup_cleanup(self: &Arc<Self>, engine: EngineIx) {
        let result = if self.group_commit.is_none() {
            self.remove_leftovers(engine).await
        } else {
            self.reconcile_engine(engine).await
        };
        let name = self.engine_name(engine).to_string();
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
                self.cap.seen(engine);
                self.engine(engine).cleaned.store(true, Ordering::Release);
                self.swept.send_replace(true);
            }
            Err(e) => warn!(engine = %name, error = %e, "startup reconcile failed; will retry"),
        }
    }

    /// Without a store: every container of this host id is an orphan, counted and removed.
    async fn remove_leftovers(
        self: &Arc<Self>,
        engine: EngineIx,
    ) -> Result<ReconcileReport, BackendError> {
        let existing = self
            .call(CALL_TIMEOUT, self.backend_of(engine).list())
            .await?;
        let mut report = ReconcileReport::default();
        for e in existing {
            self.doom(None, &e, engine);
            report.destroyed += 1;
        }
        Ok(report)
    }

    /// Count `e` (on engine `engine`) as removing (in its pool's books, or as an orphan) and
    /// remove it.
    fn doom(self: &Arc<Self>, pool: Option<&Arc<Pool>>, e: &Existing, engine: EngineIx) {
        let in_pool = pool.map(|p| (p, p.lock().doom_found(&e.name, &e.id, engine, &self.cap)));
        let counted = match in_pool {
            Some((p, Doomed::Counted)) => Some(Holder::Pool(p.clone())),
            Some((_, Doomed::Held)) => None,
            // No pool of its name, or one a reload removed while the reconcile awaited: its
            // books may no longer be read by anyone, so the container is an orphan.
            None | Some((_, Doomed::Draining)) => self
                .orphans
                .add(&e.name, &e.id, engine, &self.cap)
                .then_some(Holder::Orphan),
        };
        if let Some(holder) = counted {
            self.spawn_removal(
                holder,
                e.name.clone(),
                e.id.clone(),
                engine,
                Some(e.id.clone()),
                "left by an earlier run",
            );
        }
    }

    async fn load_persisted(&self) -> Result<Persisted, String> {
        let p = self
            .group_commit
            .as_ref()
            .expect("reconcile runs with a store");
        if let Some(done) = lock(&p.loaded).clone() {
            return Ok(done);
        }
        let store = p.store.clone();
        let loaded = if store.blocking() {
            tokio::task::spawn_blocking(move || store.load())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        } else {
            store.load().map_err(|e| e.to_string())?
        };
        p.loaded_into_pending(&loaded);
        *lock(&p.loaded) = Some(loaded.clone());
        Ok(loaded)
    }

    /// Re-attach leases, re-adopt what can be kept, remove the rest (see the module doc), on
    /// engine `engine`: its own containers, and the persisted leases recorded on it (a record
    /// without an engine, or of an engine no longer configured, belongs to the first).
    pub(crate) async fn reconcile_engine(
        self: &Arc<Self>,
        engine: EngineIx,
    ) -> Result<ReconcileReport, BackendError> {
        let persisted = self
            .load_persisted()
            .await
            .map_err(|e| BackendError::Unavailable(format!("state store: {e}")))?;
        let backend = self.backend_of(engine);
        let existing = self.call(CALL_TIMEOUT, backend.list()).await?;
        let mut image_ids: HashMap<String, Option<String>> = HashMap::new();
        for pool in self.pools().values() {
            let id = self
                .call(CALL_TIMEOUT, backend.image_id(&pool.cfg().spec.image))
                .await?;
            image_ids.insert(pool.name(), id);
        }

        // Decide, reading only.
        let mut leases_by_container: BTreeMap<String, LeaseRecord> = persisted
            .leases
            .values()
            .filter(|r| {
                r.engine
                    .as_deref()
                    .and_then(|n| self.engine_named(n))
                    .unwrap_or(0)
                    == engine
            })
            .map(|r| (r.container_id.clone(), r.clone()))
            .collect();
        // Re-adoption fills a pool up to `max_ready`, counting what other engines gave it.
        let mut adopted_per_pool: HashMap<String, u32> = self
            .pools()
            .values()
            .map(|p| (p.name(), p.lock().counts().ready))
            .collect();
        let mut fates = Vec::with_capacity(existing.len());
        for e in existing {
            let pool = e.pool.as_deref().and_then(|p| self.pool(p));
            let fate = if let Some(rec) = leases_by_container.remove(&e.id) {
                match pool {
                    Some(pool) if e.running => Fate::Reattach(pool, Box::new(rec)),
                    _ => {
                        warn!(lease = %rec.lease_id, container = %e.id, "persisted lease dropped: its container stopped or its pool is gone");
                        self.record(|| Change::DropLease(rec.lease_id));
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
                    let image_id = image_ids.get(&cfg.name).cloned().flatten();
                    e.running
                        && image_id.as_deref() == Some(e.image_id.as_str())
                        && e.fingerprint.as_deref()
                            == Some(cfg.spec.fingerprint(&e.image_id).as_str())
                        && adopted_per_pool.get(&cfg.name).copied().unwrap_or(0) < cfg.max_ready
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
                && let Ok(b) = self.call(CALL_TIMEOUT, backend.baseline(&e.id)).await
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
                    let pool = e.pool.as_deref().and_then(|p| self.pool(p));
                    self.doom(pool.as_ref(), &e, engine);
                    report.destroyed += 1;
                }
            }
        }
        for (_, rec) in leases_by_container {
            warn!(lease = %rec.lease_id, container = %rec.container_id, "persisted lease dropped: its container no longer exists");
            self.record(|| Change::DropLease(rec.lease_id));
            report.lost_leases += 1;
        }
        // Lendable entries whose container no longer exists; the others are forgotten when
        // their removal succeeds. Only once every engine was reconciled: an entry of an engine
        // not seen yet must keep its container from being re-adopted there.
        let all_seen = self
            .engines
            .iter()
            .enumerate()
            .all(|(i, x)| i == engine || x.cleaned.load(Ordering::Acquire));
        if all_seen {
            let present: std::collections::HashSet<String> = self
                .accounted()
                .into_iter()
                .filter_map(|(_, id)| id)
                .collect();
            for id in persisted.lendable.keys() {
                if !present.contains(id) {
                    self.record(|| Change::Forget(id.clone()));
                }
            }
        }
        for pool in self.pools().values() {
            if let Some(id) = image_ids.get(&pool.name()) {
                pool.lock().set_image_id(engine, id.clone());
            }
            pool.touch();
        }
        Ok(report)
    }

    /// Re-attach the persisted lease `rec` to its container `e`; `false`, changing nothing but
    /// the store (the lease is dropped), when a reload removed its pool while the reconcile
    /// awaited.
    fn reattach(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        e: &Existing,
        engine: EngineIx,
        rec: LeaseRecord,
        now: Instant,
    ) -> bool {
        let age = self.clock.since(from_unix_ms(rec.born_at_ms), now);
        let c = ReadyContainer {
            created: created_of(e),
            engine,
            ready_at: now,
            born: now.checked_sub(age).unwrap_or(now),
            uses: rec.uses,
            lendable: true,
            // A lease's container is never reused across a spec change (see reuse).
            generation: pool.generation(),
            // Its fresh state is unknown now: it is never reused.
            baseline: None,
        };
        if !pool.lock().reattach(&c, &self.cap) {
            warn!(lease = %rec.lease_id, container = %e.id, "persisted lease dropped: its pool was removed");
            self.record(|| Change::DropLease(rec.lease_id));
            return false;
        }
        if !e.used {
            self.spawn_mark(pool, &c);
        }
        let lease = Lease {
            id: rec.lease_id.clone(),
            pool: pool.clone(),
            container: c,
            source: if rec.source == "cold" {
                AcquireSource::Cold
            } else {
                AcquireSource::Pool
            },
            acquire_us: 0,
            acquired_at: from_unix_ms(rec.acquired_at_ms),
            expires: crate::clock::later(
                now,
                self.clock.until(from_unix_ms(rec.expires_at_ms), now),
            ),
            gone: None,
            owner: rec.owner.clone(),
            engine: self.engine_name(engine).to_string(),
            ops: Arc::default(),
        };
        info!(lease = %rec.lease_id, container = %e.name, pool = %pool.name(), "lease re-attached after restart");
        self.emit(
            "leased",
            &pool.name(),
            Some((&e.id, engine)),
            Some(&rec.lease_id),
            Some("re-attached after restart".into()),
        );
        self.leases.insert(lease);
        true
    }

    fn adopt(
        &self,
        pool: &Arc<Pool>,
        e: &Existing,
        engine: EngineIx,
        now: Instant,
        baseline: Option<Arc<Baseline>>,
    ) -> bool {
        // Its death was reported while reconcile awaited (a dead agent answers the baseline's
        // reading with a death report; the engine still says it runs): it is in no list the
        // report reaches, so it must not enter one now.
        if self.died_recently(&e.id) {
            return false;
        }
        let age = self.clock.since(e.created, now);
        let c = ReadyContainer {
            created: created_of(e),
            engine,
            ready_at: now,
            born: now.checked_sub(age).unwrap_or(now),
            uses: 0,
            lendable: false,
            generation: pool.generation(),
            baseline,
        };
        if !pool.lock().adopt(c, &self.cap) {
            return false;
        }
        info!(container = %e.name, pool = %pool.name(), "ready container re-adopted after restart");
        self.emit(
            "ready",
            &pool.name(),
            Some((&e.id, engine)),
            None,
            Some("re-adopted after restart".into()),
        );
        true
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
