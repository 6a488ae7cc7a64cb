//! The manager's operations on live leases: list, renew, release, exec and files. The lease
//! types and the lease table they work on are in `lease.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Backend, BackendError, ExecOutput, ExecRequest, FileBody};
use crate::caps::EngineIx;
use crate::clock::later;
use crate::error::LeaseError;
use crate::lease::{Lease, LeaseInfo};
use crate::lease_store::Change;
use crate::manager::Manager;
use crate::pool::LeaseEnd;
use crate::sync::lock;

impl<B: Backend> Manager<B> {
    /// Every live lease as the API shows it, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leases.infos(Instant::now(), &self.clock)
    }

    /// Lease `id` as the API shows it.
    pub fn lease(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.leases
            .with(id, |l| l.info(Instant::now(), &self.clock))
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))
    }

    /// Extend a lease to `ttl` from now, capped at the pool's `max_ttl`.
    pub fn renew(&self, id: &str, ttl: Duration) -> Result<LeaseInfo, LeaseError> {
        let now = Instant::now();
        self.leases
            .with(id, |l| {
                l.expires = later(now, ttl.min(l.pool.cfg().max_ttl));
                self.record(|| Change::PutLease(l.record(&self.clock)));
                l.info(now, &self.clock)
            })
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(self: &Arc<Self>, id: &str) -> Result<(), LeaseError> {
        let lease = self
            .leases
            .remove(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        self.retire_lease(lease, LeaseEnd::Released, "released");
        Ok(())
    }

    /// A lease ends: forget it in the store, and tell the event stream why.
    pub(crate) fn lease_ended(&self, lease: &Lease, why: &str) {
        self.record(|| Change::DropLease(lease.id.clone()));
        self.emit(
            "released",
            &lease.pool.name(),
            Some((&lease.container.created.id, lease.container.engine)),
            Some(&lease.id),
            Some(why.to_string()),
        );
    }

    /// A lease ends and its container is removed (never given to anyone else).
    pub(crate) fn retire_lease(self: &Arc<Self>, lease: Lease, end: LeaseEnd, why: &'static str) {
        self.lease_ended(&lease, why);
        lease.pool.lock().lease_ended(lease.container.key(), end);
        self.spawn_removal_of(&lease.pool, &lease.container, why);
    }

    /// Lease `id`'s container and its engine, which must be up: a lease on an engine that is
    /// down answers `EngineUnavailable` (it is kept, and works again when the engine returns).
    fn lease_container(&self, id: &str) -> Result<(String, EngineIx), LeaseError> {
        let (cid, e) = self.leases.container(id)?;
        let engine = self.engine(e);
        if !engine.is_up() {
            return Err(LeaseError::EngineUnavailable {
                lease: id.into(),
                engine: engine.spec.name.clone(),
                reason: lock(&engine.last_error)
                    .clone()
                    .unwrap_or_else(|| "not reached yet".into()),
            });
        }
        Ok((cid, e))
    }

    /// Why an operation on lease `id` failed. A lease that ended while the call ran (it
    /// expired, was released, or its container died) says so, as it would have before the
    /// call: the engine's complaint about a container being removed under it is not the
    /// client's fault, nor an engine fault.
    fn failed_on_lease(&self, id: &str, source: BackendError) -> LeaseError {
        match self.leases.container(id) {
            Err(ended) => ended,
            Ok(_) => LeaseError::Backend {
                lease: id.into(),
                source,
            },
        }
    }

    /// Run `req` in lease `id`'s container. A zero `output_limit` means the manager's
    /// `exec_output_limit`.
    pub async fn exec(&self, id: &str, mut req: ExecRequest) -> Result<ExecOutput, LeaseError> {
        let (cid, e) = self.lease_container(id)?;
        if req.output_limit == 0 {
            req.output_limit = self.cfg.exec_output_limit;
        }
        let deadline = req.timeout + crate::lifecycle::CALL_SLACK;
        self.call(deadline, self.backend_of(e).exec(&cid, req))
            .await
            .map_err(|source| self.failed_on_lease(id, source))
    }

    /// Write `file` at absolute `path` inside lease `id`'s container.
    pub async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), LeaseError> {
        let (cid, e) = self.lease_container(id)?;
        crate::deadline::upload(file, |file| self.backend_of(e).put_file(&cid, path, file))
            .await
            .map_err(|source| self.failed_on_lease(id, source))
    }

    /// Read the file at absolute `path` in lease `id`'s container, as a stream.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, LeaseError> {
        let (cid, e) = self.lease_container(id)?;
        crate::deadline::download(self.backend_of(e).get_file(&cid, path))
            .await
            .map_err(|source| self.failed_on_lease(id, source))
    }
}
