//! A lease's own CPU and memory limits: checked against the pool's `resources` bounds, applied
//! to the container at acquire (before the lease is handed out) or while it is held (`PATCH`),
//! and put back to the pool's before a reuse (`reuse.rs`).
//!
//! At acquire, an update that fails ends the lease at once and destroys its container: the
//! acquire fails with the engine's error rather than trying another container. The update is
//! one engine call on a container the engine just served; when it fails, the engine is in
//! trouble or refuses these limits, and another warm container (taken from the clients behind)
//! would most likely fail the same way, doubling the time to an answer the client can act on
//! (retry, or ask for less). The container is destroyed, not returned: its limits are unknown.

use crate::backend::{Backend, BackendError, ResourceBounds, Resources};
use crate::error::{AcquireError, LeaseError, ResizeError};
use crate::lease::LeaseInfo;
use crate::lease_store::Change;
use crate::lifecycle::{CALL_TIMEOUT, call};

use super::Leasing;
use super::sessions::Unclaimed;

impl<B: Backend> Leasing<B> {
    /// The limits an acquire of pool `pool` asking `ask` gets, if the pool allows it and the
    /// ask is within its bounds; `None` when the ask is the pool's own (nothing to apply).
    pub(crate) fn resources_at_acquire(
        &self,
        pool: &str,
        ask: &Resources,
    ) -> Result<Option<Resources>, AcquireError> {
        let Some(p) = self.s.books.get(pool) else {
            return Err(AcquireError::UnknownPool(pool.into()));
        };
        let cfg = p.cfg();
        let own = Resources::of(&cfg.spec);
        let target = ResourceBounds::resolve(cfg.resources.as_ref(), pool, own, ask)
            .map_err(AcquireError::Resources)?;
        Ok((target != own).then_some(target))
    }

    /// Apply `target` to the new lease `info`'s container before the lease is handed out. A
    /// failure, or the acquire's end before the update's (the client hung up), ends the lease
    /// and destroys the container (see the module doc).
    pub(crate) async fn resize_new(
        &self,
        info: LeaseInfo,
        target: Resources,
    ) -> Result<LeaseInfo, AcquireError> {
        let mut unclaimed = Unclaimed {
            leasing: self,
            id: info.lease_id.clone(),
            claimed: false,
        };
        let r = self.apply(&info.lease_id, target).await;
        unclaimed.claimed = true;
        match r {
            Ok(info) => Ok(info),
            Err(e) => {
                // Ends the lease, so its container is destroyed; a lease already gone (its
                // container died meanwhile) has nothing left to end.
                if let Err(end) = self.release(&info.lease_id) {
                    tracing::debug!(lease = %info.lease_id, error = %end, "resized lease already ended");
                }
                Err(AcquireError::Setup {
                    pool: info.pool,
                    source: match e {
                        LeaseError::Backend { source, .. } => source,
                        e => BackendError::Operation {
                            stage: "update resources",
                            container: info.container_id.clone(),
                            message: e.to_string(),
                        },
                    },
                })
            }
        }
    }

    /// Change lease `id`'s limits to what `ask` asks (a field not asked keeps the lease's),
    /// within its pool's bounds.
    pub async fn resize(&self, id: &str, ask: &Resources) -> Result<LeaseInfo, ResizeError> {
        let (pool, bounds, current) = self
            .s
            .leases
            .with(id, |l| (l.pool.name(), l.pool.cfg().resources, l.resources))
            .ok_or_else(|| self.no_lease(id))?;
        let target = ResourceBounds::resolve(bounds.as_ref(), &pool, current, ask)?;
        Ok(self.apply(id, target).await?)
    }

    /// Update lease `id`'s container to `target` inside the lease's fence (a release for reuse
    /// waits for it). The lease is marked resized before the call, so a reuse puts the pool's
    /// limits back even when the answer never came; it shows `target` once the engine took it.
    /// A suspended lease is resumed first, or refused, as its pool says: like any call.
    async fn apply(&self, id: &str, target: Resources) -> Result<LeaseInfo, LeaseError> {
        let op = self.awake_op(id).await?;
        self.s.leases.with(id, |l| l.resized = true);
        self.in_fence(
            id,
            op,
            "update resources",
            move |backend, container| async move {
                call(CALL_TIMEOUT, backend.update_resources(&container, target)).await
            },
        )
        .await?;
        let clock = self.s.rt.clock();
        self.s
            .leases
            .with(id, |l| {
                l.resources = target;
                self.s.persist.record(|| Change::PutLease(l.record(clock)));
                l.info(tokio::time::Instant::now(), clock)
            })
            .ok_or_else(|| self.no_lease(id))
    }
}
