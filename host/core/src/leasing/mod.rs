//! Layer 2: leasing, one part ([`Leasing`]) over several files. It holds no state of its own:
//! it works on the layer-0 parts ([`crate::shared`]: the lease table, the pools' books, the
//! fleet, the events, the group commit) and on containers through [`Lifecycle`]; it calls
//! nothing else.
//!
//! - here: list, renew, release, exec and single files, and the fence every operation on a
//!   lease runs inside (`crate::fence`, with the deadlines of `crate::deadline`);
//! - `acquire.rs`: the warm path, waiting, cold creates, the hand-off;
//! - `reuse.rs`: release with a scrub;
//! - `hibernate.rs`: suspend and resume, and the calls that wake a suspended lease;
//! - `sessions.rs`: a lease's own set-up, sessions and tar streams.
//!
//! The lease types and the lease table they work on are in `crate::lease`.

mod acquire;
mod hibernate;
mod resources;
mod reuse;
mod sessions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

pub use hibernate::SuspendCause;
pub use reuse::ReuseOutcome;
pub use sessions::LeaseSession;

use crate::backend::{
    Backend, BackendError, ByteStream, ExecOutput, ExecRequest, FileBody, LeaseSetup, Resources,
};
use crate::clock::later;
use crate::error::LeaseError;
use crate::fence::LeaseOp;
use crate::lease::{Lease, LeaseInfo};
use crate::lease_store::Change;
use crate::lifecycle::{CALL_SLACK, Lifecycle, call};
use crate::pool::LeaseEnd;
use crate::shared::Shared;

/// An acquire as the API receives it.
#[derive(Debug, Clone, Default)]
pub struct AcquireRequest {
    /// Name of the pool to lease from.
    pub pool: String,
    /// Lease lifetime; `None`: the pool's `default_ttl`. Capped at the pool's `max_ttl`.
    pub ttl: Option<Duration>,
    /// The client's bound on waiting when the pool is dry.
    pub wait: Option<Duration>,
    /// Who holds the lease (a user, session or job id), free text; shown and persisted.
    pub owner: Option<String>,
    /// The tenant taking the lease (the API's caller), if the API has tenants; shown,
    /// persisted, and on the lease's events.
    pub tenant: Option<String>,
    /// Only engines carrying all of these labels may serve it; empty: any engine.
    pub engine_labels: BTreeMap<String, String>,
    /// The lease's own environment, secrets, working directory and files, applied to the
    /// container before the acquire answers.
    pub setup: Option<Arc<LeaseSetup>>,
    /// CPU and memory limits of the lease's own, within the pool's `resources` bounds, applied
    /// to the container before the acquire answers; a field not asked is the pool's.
    pub resources: Option<Resources>,
}

/// The operations on leases (see the module doc). Cheap to clone: the tasks it spawns hold a
/// clone.
pub(crate) struct Leasing<B> {
    s: Arc<Shared<B>>,
    life: Lifecycle<B>,
}

impl<B> Clone for Leasing<B> {
    fn clone(&self) -> Self {
        Self {
            s: self.s.clone(),
            life: self.life.clone(),
        }
    }
}

impl<B: Backend> Leasing<B> {
    pub fn new(s: Arc<Shared<B>>, life: Lifecycle<B>) -> Self {
        Self { s, life }
    }

    /// Every live lease as the API shows it, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.s.leases.infos(Instant::now(), self.s.rt.clock())
    }

    /// Lease `id` as the API shows it.
    pub fn lease(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.s
            .leases
            .with(id, |l| l.info(Instant::now(), self.s.rt.clock()))
            .ok_or_else(|| self.no_lease(id))
    }

    /// Why lease `id` is not in the table. With a state store, until every engine's startup
    /// reconcile has run, an ID the table lacks may be a lease the store holds on an engine
    /// not reconciled yet: that is "not yet", never "unknown", or a client that asks right
    /// after a restart would give up a lease it still has.
    /// The tenant of lease `id`: one map lookup, for the API's check of who may touch it.
    pub fn tenant_of(&self, id: &str) -> Result<Option<String>, LeaseError> {
        self.s.leases.tenant_of(id).map_err(|_| self.no_lease(id))
    }

    /// Leases tenant `name` holds.
    pub fn count_of(&self, name: &str) -> u32 {
        self.s.leases.count_of(name)
    }

    /// The TTL a lease of pool `pool` gets when `asked` is asked (`None`: the pool's
    /// default), capped at the pool's `max_ttl`; `None` for an unknown pool.
    pub fn ttl_for(&self, pool: &str, asked: Option<Duration>) -> Option<Duration> {
        let cfg = self.s.books.get(pool)?.cfg();
        Some(asked.unwrap_or(cfg.default_ttl).min(cfg.max_ttl))
    }

    fn no_lease(&self, id: &str) -> LeaseError {
        if self.s.persist.enabled() {
            let pending = self.s.fleet.not_cleaned();
            if !pending.is_empty() {
                return LeaseError::NotRestoredYet {
                    lease: id.into(),
                    engines: pending.join(", "),
                };
            }
        }
        LeaseError::UnknownLease(id.into())
    }

    /// Extend a lease to `ttl` from now, capped at the pool's `max_ttl`.
    pub fn renew(&self, id: &str, ttl: Duration) -> Result<LeaseInfo, LeaseError> {
        self.renew_with(id, ttl, |_, _, _| Ok::<(), std::convert::Infallible>(()))?
            .map_err(|never| match never {})
    }

    /// [`Leasing::renew`], if `pay` agrees: it is asked under the lease table's lock with the
    /// lease's tenant, the time it had left and the time it will have, so the change it pays
    /// for is the one made.
    pub fn renew_with<R>(
        &self,
        id: &str,
        ttl: Duration,
        pay: impl FnOnce(Option<&str>, Duration, Duration) -> Result<(), R>,
    ) -> Result<Result<LeaseInfo, R>, LeaseError> {
        let now = Instant::now();
        let clock = self.s.rt.clock();
        self.s
            .leases
            .with(id, |l| {
                let had = l.expires.saturating_duration_since(now);
                let will = ttl.min(l.pool.cfg().max_ttl);
                pay(l.tenant.as_deref(), had, will)?;
                l.expires = later(now, will);
                self.s.persist.record(|| Change::PutLease(l.record(clock)));
                Ok(l.info(now, clock))
            })
            .ok_or_else(|| self.no_lease(id))
    }

    /// What a lookup of lease `id` answers when the caller may not see it: exactly what it
    /// answers for an ID no lease has.
    pub fn unknown(&self, id: &str) -> LeaseError {
        self.no_lease(id)
    }

    /// Keep each tenant's lease time with `ledger` from now on.
    pub fn set_ledger(&self, ledger: Arc<dyn crate::lease::LeaseLedger>) {
        self.s.leases.set_ledger(ledger);
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(&self, id: &str) -> Result<(), LeaseError> {
        let lease = self.s.leases.remove(id).ok_or_else(|| self.no_lease(id))?;
        self.retire_lease(lease, LeaseEnd::Released, "released");
        Ok(())
    }

    /// A lease ends: forget it in the store, and tell the event stream why.
    fn lease_ended(&self, lease: &Lease, why: &str) {
        self.s
            .persist
            .record(|| Change::DropLease(lease.id.clone()));
        self.s.events.emit(
            "released",
            &lease.pool.name(),
            Some((&lease.container.created.id, lease.container.engine)),
            Some(lease.into()),
            Some(why.to_string()),
        );
    }

    /// A lease ends and its container is removed (never given to anyone else).
    pub(crate) fn retire_lease(&self, lease: Lease, end: LeaseEnd, why: &'static str) {
        self.lease_ended(&lease, why);
        lease.pool.lock().lease_ended(lease.container.key(), end);
        self.life
            .spawn_removal_of(&lease.pool, &lease.container, why);
    }

    /// Begin an operation on lease `id`, whose engine must be up: a lease on an engine that is
    /// down answers `EngineUnavailable` (it is kept, and works again when the engine returns).
    /// The operation holds a place inside the lease's fence until it is dropped.
    fn lease_op(&self, id: &str) -> Result<LeaseOp, LeaseError> {
        let op = self.s.leases.op(id).map_err(|e| match e {
            LeaseError::UnknownLease(_) => self.no_lease(id),
            e => e,
        })?;
        if !self.s.fleet.is_up(op.engine) {
            return Err(LeaseError::EngineUnavailable {
                lease: id.into(),
                engine: self.s.fleet.name(op.engine).to_string(),
                reason: self.s.fleet.last_error(op.engine),
            });
        }
        Ok(op)
    }

    /// Why an operation on lease `id` failed. A lease that ended while the call ran (it
    /// expired, was released, or its container died) says so, as it would have before the
    /// call: the engine's complaint about a container being removed under it, or the backend's
    /// word that the call was stopped by the lease's end, is not the client's fault, nor an
    /// engine fault.
    fn failed_on_lease(&self, id: &str, source: BackendError) -> LeaseError {
        match self.s.leases.container(id) {
            Err(ended) => ended,
            Ok(_) => LeaseError::Backend {
                lease: id.into(),
                source,
            },
        }
    }

    /// Run `req` in lease `id`'s container. A zero `output_limit` means the manager's
    /// `exec_output_limit`.
    ///
    /// The engine call runs to its end on a task of its own, inside the lease's fence: a
    /// client that hangs up stops it (its processes are killed), and a release waits for it,
    /// so nothing it started reaches the container after a reuse's scrub began.
    pub async fn exec(&self, id: &str, mut req: ExecRequest) -> Result<ExecOutput, LeaseError> {
        let op = self.awake_op(id).await?;
        if req.output_limit == 0 {
            req.output_limit = self.s.rt.cfg().exec_output_limit;
        }
        req.stop = op.stop();
        let _hang_up = op.token.clone().drop_guard();
        let deadline = req.timeout + CALL_SLACK;
        self.in_fence(id, op, "exec", move |backend, container| async move {
            call(deadline, backend.exec(&container, req)).await
        })
        .await
    }

    /// Run the engine call `call` makes (given the lease's engine and container) to its end on
    /// a tracked task of its own, holding `op`'s place inside the lease's fence until then: a
    /// client that hangs up does not cut it short, and a release waits for it. Its failure is
    /// lease `id`'s (one that ended meanwhile says so); `what` names the task if the task itself
    /// fails.
    async fn in_fence<T, F, Fut>(
        &self,
        id: &str,
        op: LeaseOp,
        what: &'static str,
        call: F,
    ) -> Result<T, LeaseError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<B>, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    {
        let fut = call(
            self.s.fleet.backend(op.engine).clone(),
            op.container.clone(),
        );
        let task = self.s.rt.tracker().spawn(async move {
            let r = fut.await;
            op.done(&r);
            r
        });
        task.await
            .unwrap_or_else(|e| {
                Err(BackendError::Unavailable(format!(
                    "{what} task failed: {e}"
                )))
            })
            .map_err(|source| self.failed_on_lease(id, source))
    }

    /// Write `file` at absolute `path` inside lease `id`'s container. As with
    /// [`exec`](Self::exec), the engine call runs to its end inside the lease's fence; the
    /// lease's end, or the client hanging up, cuts the body. The daemon's own deadlines on
    /// waiting apply (`deadline.rs`).
    pub async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), LeaseError> {
        let op = self.awake_op(id).await?;
        let _hang_up = op.token.clone().drop_guard();
        let file = FileBody {
            len: file.len,
            body: until_stopped(file.body, op.token.clone(), None),
        };
        let path = path.to_string();
        self.in_fence(id, op, "upload", move |backend, container| async move {
            crate::deadline::upload(file, |file| backend.put_file(&container, &path, file)).await
        })
        .await
    }

    /// Read the file at absolute `path` in lease `id`'s container, as a stream. The stream
    /// holds its place inside the lease's fence until it is done or dropped, and ends early
    /// (with an error) when the lease ends.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, LeaseError> {
        let op = self.awake_op(id).await?;
        let file = crate::deadline::download(
            self.s
                .fleet
                .backend(op.engine)
                .get_file(&op.container, path),
        )
        .await
        .map_err(|source| self.failed_on_lease(id, source))?;
        let token = op.token.clone();
        Ok(FileBody {
            len: file.len,
            body: until_stopped(file.body, token, Some(op)),
        })
    }
}

/// `body`, cut with an error when `token` fires; `op` (a place inside a lease's fence) is held
/// until the stream ends or is dropped.
fn until_stopped(body: ByteStream, token: CancellationToken, op: Option<LeaseOp>) -> ByteStream {
    let stopped = token.cancelled_owned();
    Box::pin(futures_util::stream::unfold(
        (body, Box::pin(stopped), op, false),
        |(mut body, mut stopped, op, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                () = &mut stopped => Some((
                    Err(BackendError::Unavailable("cut off: the lease ended".into())),
                    (body, stopped, op, true),
                )),
                next = body.next() => next.map(|item| (item, (body, stopped, op, false))),
            }
        },
    ))
}
