//! The startup reconcile's changes, container by container (`reconcile.rs` decides): a
//! persisted lease re-attached to its container, a ready container re-adopted into its pool,
//! anything else counted as removing and removed.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::{info, warn};
use warmpool_policy::AcquireSource;

use super::Persistence;
use crate::backend::{Backend, Baseline, Created, Existing};
use crate::caps::EngineIx;
use crate::lease::Lease;
use crate::lease_store::{Change, LeaseRecord, from_unix_ms};
use crate::lifecycle::Holder;
use crate::pool::{Doomed, Pool, ReadyContainer};

impl<B: Backend> Persistence<B> {
    /// Count `e` (on engine `engine`) as removing (in its pool's books, or as an orphan) and
    /// remove it.
    pub(super) fn doom(&self, pool: Option<&Arc<Pool>>, e: &Existing, engine: EngineIx) {
        let caps = self.s.fleet.caps();
        let in_pool = pool.map(|p| (p, p.lock().doom_found(&e.name, &e.id, engine, caps)));
        let counted = match in_pool {
            Some((p, Doomed::Counted)) => Some(Holder::Pool(p.clone())),
            Some((_, Doomed::Held)) => None,
            // No pool of its name, or one a reload removed while the reconcile awaited: its
            // books may no longer be read by anyone, so the container is an orphan.
            None | Some((_, Doomed::Draining)) => self
                .s
                .fleet
                .orphan(&e.name, &e.id, engine)
                .then_some(Holder::Orphan),
        };
        if let Some(holder) = counted {
            self.life.spawn_removal(
                holder,
                e.name.clone(),
                e.id.clone(),
                engine,
                Some(e.id.clone()),
                "left by an earlier run",
            );
        }
    }

    /// Re-attach the persisted lease `rec` to its container `e`; `false`, changing nothing but
    /// the store (the lease is dropped), when a reload removed its pool while the reconcile
    /// awaited.
    pub(super) fn reattach(
        &self,
        pool: &Arc<Pool>,
        e: &Existing,
        engine: EngineIx,
        rec: LeaseRecord,
        now: Instant,
    ) -> bool {
        let s = &self.s;
        let clock = s.rt.clock();
        let age = clock.since(from_unix_ms(rec.born_at_ms), now);
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
        // A suspended lease's container is stopped on purpose, with its checkpoint; one whose
        // resume finished but was not committed yet runs, and is the running lease it is.
        let suspended = rec.suspended_at_ms.filter(|_| !e.running);
        if !pool
            .lock()
            .reattach(&c, s.fleet.caps(), suspended.is_some())
        {
            warn!(lease = %rec.lease_id, container = %e.id, "persisted lease dropped: its pool was removed");
            s.persist.record(|| Change::DropLease(rec.lease_id));
            return false;
        }
        if !e.used {
            self.life.spawn_mark(pool, &c);
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
            expires: crate::clock::later(now, clock.until(from_unix_ms(rec.expires_at_ms), now)),
            gone: None,
            owner: rec.owner.clone(),
            tenant: rec.tenant.clone(),
            engine: s.fleet.name(engine).to_string(),
            ops: Arc::default(),
            // What the lease asked for, from its record (the pool's when it asked nothing). Its
            // container has no baseline either way, so it is never reused.
            resources: rec.resources.map_or_else(
                || crate::backend::Resources::of(&pool.cfg().spec),
                |(nano_cpus, memory)| crate::backend::Resources { nano_cpus, memory },
            ),
            resized: rec.resources.is_some(),
            hib: match suspended {
                Some(ms) => crate::lease::Hib::Suspended(from_unix_ms(ms)),
                None => crate::lease::Hib::Running,
            },
            last_used: now,
            turn: Arc::default(),
            hibernated: rec.suspended_at_ms.is_some(),
        };
        info!(lease = %rec.lease_id, container = %e.name, pool = %pool.name(), "lease re-attached after restart");
        s.events.emit(
            "leased",
            &pool.name(),
            Some((&e.id, engine)),
            Some((&lease).into()),
            Some("re-attached after restart".into()),
        );
        s.leases.insert(lease);
        true
    }

    pub(super) fn adopt(
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
        let s = &self.s;
        if s.fleet.died_recently(&e.id) {
            return false;
        }
        let age = s.rt.clock().since(e.created, now);
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
        if !pool.lock().adopt(c, s.fleet.caps()) {
            return false;
        }
        info!(container = %e.name, pool = %pool.name(), "ready container re-adopted after restart");
        s.events.emit(
            "ready",
            &pool.name(),
            Some((&e.id, engine)),
            None,
            Some("re-adopted after restart".into()),
        );
        true
    }
}

/// What the engine said of container `e`, as a create would have.
fn created_of(e: &Existing) -> Created {
    Created {
        id: e.id.clone(),
        name: e.name.clone(),
        image: e.image.clone(),
        image_id: e.image_id.clone(),
    }
}
