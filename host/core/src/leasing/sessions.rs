//! The manager's operations on leases beyond the buffered exec and single files: a lease's own
//! set-up at acquire, commands as sessions (streamed output, streamed input, terminals), and
//! directories as tar streams. Each holds its place inside the lease's fence (`fence.rs`) for
//! as long as it runs, as exec and the file calls do (`leasing/mod.rs`).

use crate::backend::{
    Backend, BackendError, ByteStream, ExecMode, ExecRequest, ExecSession, LeaseSetup,
};
use crate::error::{AcquireError, LeaseError};
use crate::fence::LeaseOp;
use crate::lease::LeaseInfo;
use crate::lifecycle::{CALL_TIMEOUT, call};

use super::{Leasing, until_stopped};

/// A command running as a session on a lease: the session, and the lease's fence held open
/// until it is dropped.
#[derive(Debug)]
pub struct LeaseSession {
    /// The session: its events and its input.
    pub session: ExecSession,
    _op: LeaseOp,
}

impl<B: Backend> Leasing<B> {
    /// Whether pool `pool` can give what `setup` asks: secrets only come through the agent.
    pub(crate) fn setup_allowed(&self, pool: &str, setup: &LeaseSetup) -> Result<(), AcquireError> {
        let Some(p) = self.s.books.get(pool) else {
            return Err(AcquireError::UnknownPool(pool.into()));
        };
        if !setup.secrets.is_empty() && p.cfg().spec.exec == ExecMode::Engine {
            return Err(AcquireError::Unsupported {
                pool: pool.into(),
                reason: "secrets need a pool with `exec: agent` (the agent keeps them in its \
                         memory; through the engine's exec they would be in each exec's \
                         configuration on the engine)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Apply `setup` to the new lease `info`'s container before the lease is handed out. A
    /// failure ends the lease at once (its container is destroyed, never lent to anyone: it
    /// may hold part of the set-up), and so does the acquire's end before the set-up's (the
    /// client hung up): nobody would ever learn the lease's ID, and it would hold its container,
    /// and count against its tenant, until its TTL ran out.
    pub(crate) async fn set_up(
        &self,
        info: LeaseInfo,
        setup: &LeaseSetup,
    ) -> Result<LeaseInfo, AcquireError> {
        let mut unclaimed = Unclaimed {
            leasing: self,
            id: info.lease_id.clone(),
            claimed: false,
        };
        let r = match self.lease_op(&info.lease_id) {
            Ok(op) => {
                let r = call(
                    CALL_TIMEOUT,
                    self.s
                        .fleet
                        .backend(op.engine)
                        .lease_setup(&op.container, setup),
                )
                .await;
                op.done(&r);
                r
            }
            Err(e) => Err(BackendError::Operation {
                stage: "lease setup",
                container: info.container_id.clone(),
                message: e.to_string(),
            }),
        };
        unclaimed.claimed = true;
        match r {
            Ok(()) => Ok(info),
            Err(source) => {
                let _ = self.release(&info.lease_id);
                Err(AcquireError::Setup {
                    pool: info.pool,
                    source,
                })
            }
        }
    }

    /// Start `req` in lease `id`'s container as a session. The session holds the lease's fence
    /// until it is dropped: the lease's end stops it (its tree is killed), and a release for
    /// reuse waits for it. A zero `output_limit` streams everything.
    pub async fn exec_session(
        &self,
        id: &str,
        mut req: ExecRequest,
    ) -> Result<LeaseSession, LeaseError> {
        let op = self.awake_op(id).await?;
        req.stop = op.stop();
        let r = call(
            CALL_TIMEOUT,
            self.s
                .fleet
                .backend(op.engine)
                .exec_session(&op.container, req),
        )
        .await;
        match r {
            Ok(session) => Ok(LeaseSession { session, _op: op }),
            Err(source) => {
                op.done::<()>(&Err(source.clone()));
                Err(self.failed_on_lease(id, source))
            }
        }
    }

    /// Unpack the tar stream `body` into directory `dir` of lease `id`'s container. As an
    /// upload: inside the fence to the engine's answer, its body cut when the lease ends.
    pub async fn put_tar(&self, id: &str, dir: &str, body: ByteStream) -> Result<(), LeaseError> {
        let op = self.awake_op(id).await?;
        let _hang_up = op.token.clone().drop_guard();
        let body = until_stopped(body, op.token.clone(), None);
        let dir = dir.to_string();
        self.in_fence(id, op, "upload", move |backend, container| async move {
            call(CALL_TIMEOUT, backend.put_tar(&container, &dir, body)).await
        })
        .await
    }

    /// Directory (or file) `path` of lease `id`'s container as a tar stream, which holds its
    /// place inside the fence until it ends and ends when the lease does.
    pub async fn get_tar(&self, id: &str, path: &str) -> Result<ByteStream, LeaseError> {
        let op = self.awake_op(id).await?;
        let body = call(
            CALL_TIMEOUT,
            self.s.fleet.backend(op.engine).get_tar(&op.container, path),
        )
        .await
        .map_err(|source| self.failed_on_lease(id, source))?;
        let token = op.token.clone();
        Ok(until_stopped(body, token, Some(op)))
    }
}

/// A lease being set up: dropped before the set-up ended (the acquire was dropped), it ends the
/// lease.
pub(super) struct Unclaimed<'a, B: Backend> {
    pub(super) leasing: &'a Leasing<B>,
    pub(super) id: String,
    pub(super) claimed: bool,
}

impl<B: Backend> Drop for Unclaimed<'_, B> {
    fn drop(&mut self) {
        if !self.claimed {
            let _ = self.leasing.release(&self.id);
        }
    }
}
