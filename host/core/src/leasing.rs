//! The manager's operations on live leases: list, renew, release, exec and files. The lease
//! types and the lease table they work on are in `lease.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendError, ByteStream, ExecOutput, ExecRequest, FileBody};
use crate::clock::later;
use crate::error::LeaseError;
use crate::fence::LeaseOp;
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
            .ok_or_else(|| self.no_lease(id))
    }

    /// Why lease `id` is not in the table. With a state store, until every engine's startup
    /// reconcile has run, an ID the table lacks may be a lease the store holds on an engine
    /// not reconciled yet: that is "not yet", never "unknown", or a client that asks right
    /// after a restart would give up a lease it still has.
    pub(crate) fn no_lease(&self, id: &str) -> LeaseError {
        if self.group_commit.is_some() {
            let pending: Vec<&str> = self
                .engines
                .iter()
                .filter(|e| !e.cleaned.load(std::sync::atomic::Ordering::Acquire))
                .map(|e| e.spec.name.as_str())
                .collect();
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
        let now = Instant::now();
        self.leases
            .with(id, |l| {
                l.expires = later(now, ttl.min(l.pool.cfg().max_ttl));
                self.record(|| Change::PutLease(l.record(&self.clock)));
                l.info(now, &self.clock)
            })
            .ok_or_else(|| self.no_lease(id))
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(self: &Arc<Self>, id: &str) -> Result<(), LeaseError> {
        let lease = self.leases.remove(id).ok_or_else(|| self.no_lease(id))?;
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

    /// Begin an operation on lease `id`, whose engine must be up: a lease on an engine that is
    /// down answers `EngineUnavailable` (it is kept, and works again when the engine returns).
    /// The operation holds a place inside the lease's fence until it is dropped.
    pub(crate) fn lease_op(&self, id: &str) -> Result<LeaseOp, LeaseError> {
        let op = self.leases.op(id).map_err(|e| match e {
            LeaseError::UnknownLease(_) => self.no_lease(id),
            e => e,
        })?;
        let engine = self.engine(op.engine);
        if !engine.is_up() {
            return Err(LeaseError::EngineUnavailable {
                lease: id.into(),
                engine: engine.spec.name.clone(),
                reason: lock(&engine.last_error)
                    .clone()
                    .unwrap_or_else(|| "not reached yet".into()),
            });
        }
        Ok(op)
    }

    /// Why an operation on lease `id` failed. A lease that ended while the call ran (it
    /// expired, was released, or its container died) says so, as it would have before the
    /// call: the engine's complaint about a container being removed under it, or the backend's
    /// word that the call was stopped by the lease's end, is not the client's fault, nor an
    /// engine fault.
    pub(crate) fn failed_on_lease(&self, id: &str, source: BackendError) -> LeaseError {
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
    ///
    /// The engine call runs to its end on a task of its own, inside the lease's fence: a
    /// client that hangs up stops it (its processes are killed), and a release waits for it,
    /// so nothing it started reaches the container after a reuse's scrub began.
    pub async fn exec(
        self: &Arc<Self>,
        id: &str,
        mut req: ExecRequest,
    ) -> Result<ExecOutput, LeaseError> {
        let op = self.lease_op(id)?;
        if req.output_limit == 0 {
            req.output_limit = self.cfg.exec_output_limit;
        }
        req.stop = op.stop();
        let _hang_up = op.token.clone().drop_guard();
        let deadline = req.timeout + crate::lifecycle::CALL_SLACK;
        self.in_fence(id, op, "exec", move |this, engine, container| async move {
            this.call(deadline, this.backend_of(engine).exec(&container, req))
                .await
        })
        .await
    }

    /// Run the engine call `call` makes to its end on a tracked task of its own, holding
    /// `op`'s place inside the lease's fence until then: a client that hangs up does not cut
    /// it short, and a release waits for it. Its failure is lease `id`'s (one that ended
    /// meanwhile says so); `what` names the task if the task itself fails.
    pub(crate) async fn in_fence<T, F, Fut>(
        self: &Arc<Self>,
        id: &str,
        op: LeaseOp,
        what: &'static str,
        call: F,
    ) -> Result<T, LeaseError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Self>, crate::caps::EngineIx, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    {
        let fut = call(self.clone(), op.engine, op.container.clone());
        let task = self.tracker.spawn(async move {
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
    pub async fn put_file(
        self: &Arc<Self>,
        id: &str,
        path: &str,
        file: FileBody,
    ) -> Result<(), LeaseError> {
        let op = self.lease_op(id)?;
        let _hang_up = op.token.clone().drop_guard();
        let file = FileBody {
            len: file.len,
            body: until_stopped(file.body, op.token.clone(), None),
        };
        let path = path.to_string();
        self.in_fence(
            id,
            op,
            "upload",
            move |this, engine, container| async move {
                let backend = this.backend_of(engine);
                crate::deadline::upload(file, |file| backend.put_file(&container, &path, file))
                    .await
            },
        )
        .await
    }

    /// Read the file at absolute `path` in lease `id`'s container, as a stream. The stream
    /// holds its place inside the lease's fence until it is done or dropped, and ends early
    /// (with an error) when the lease ends.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, LeaseError> {
        let op = self.lease_op(id)?;
        let file =
            crate::deadline::download(self.backend_of(op.engine).get_file(&op.container, path))
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
pub(crate) fn until_stopped(
    body: ByteStream,
    token: CancellationToken,
    op: Option<LeaseOp>,
) -> ByteStream {
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
