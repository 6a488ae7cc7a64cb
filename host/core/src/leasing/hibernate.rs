//! Lease hibernation: suspend a lease (its container checkpointed to the engine's disk and
//! stopped, so it holds no memory) and resume it (restored from the checkpoint, its processes
//! where they were).
//!
//! - One suspend or resume at a time per lease (its `turn`); calls on a lease that is not
//!   running wait for the resume they start (`lease.on_suspended: resume`) or are refused.
//! - A suspend needs the lease idle (no call under way: a checkpoint would cut it) and its
//!   engine up; an engine that cannot checkpoint says why, and the lease runs on.
//! - The TTL runs on while suspended; a release or an expiry destroys the container (a
//!   suspended container is never reset for reuse).
//! - A failed suspend or resume (an engine error, no answer) is settled on what the engine
//!   says of the container afterwards: running, stopped with its checkpoint (suspended), or
//!   lost, and then the lease ends and its container is removed. An engine that cannot be
//!   asked leaves the lease suspended: its container is stopped or being stopped, and the next
//!   resume finds out. So a lease is always running, suspended, or ended with its container
//!   being removed; never lost.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{info, warn};

use super::Leasing;
use crate::backend::{Backend, BackendError, Hibernation};
use crate::config::OnSuspended;
use crate::error::LeaseError;
use crate::fence::LeaseOp;
use crate::lease::{Hib, LeaseInfo};
use crate::lease_store::Change;
use crate::lifecycle::call;
use crate::pool::LeaseEnd;

/// Bound on one checkpoint or restore: a Python process's checkpoint takes a few seconds.
pub(crate) const HIBERNATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on asking the engine where a container stands after a failure.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a suspend was started: only logged and counted differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendCause {
    /// `POST /v1/leases/{id}/suspend`.
    Request,
    /// The pool's `lease.suspend_after_idle`.
    Idle,
}

impl<B: Backend> Leasing<B> {
    /// Suspend lease `id`: checkpoint its container and stop it. A lease already suspended
    /// answers as it is. Runs to its end on a tracked task of its own: a client that hangs up
    /// does not leave the lease half suspended.
    pub async fn suspend(&self, id: &str, cause: SuspendCause) -> Result<LeaseInfo, LeaseError> {
        let (this, lease) = (self.clone(), id.to_string());
        let task = self
            .s
            .rt
            .tracker()
            .spawn(async move { this.suspend_now(&lease, cause).await });
        task.await
            .unwrap_or_else(|e| Err(task_failed(id, "suspend", e)))
    }

    /// Resume lease `id` from its checkpoint; a running lease answers as it is. On a tracked
    /// task of its own, as [`Leasing::suspend`].
    pub async fn resume(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        let (this, lease) = (self.clone(), id.to_string());
        let task = self
            .s
            .rt
            .tracker()
            .spawn(async move { this.resume_now(&lease).await });
        task.await
            .unwrap_or_else(|e| Err(task_failed(id, "resume", e)))
    }

    async fn suspend_now(&self, id: &str, cause: SuspendCause) -> Result<LeaseInfo, LeaseError> {
        let turn = self
            .s
            .leases
            .with(id, |l| l.turn.clone())
            .ok_or_else(|| self.no_lease(id))?;
        let _turn = turn.lock().await;
        // Checked and marked under the table's lock, where calls enter: none can slip in.
        let begun = self
            .s
            .leases
            .with(id, |l| {
                if let Some(reason) = &l.gone {
                    return Err(LeaseError::ContainerGone {
                        lease: id.into(),
                        reason: reason.clone(),
                    });
                }
                match l.hib {
                    Hib::Running => {}
                    _ => return Ok(None),
                }
                if l.ops.busy() {
                    return Err(LeaseError::CannotSuspend {
                        lease: id.into(),
                        reason: "calls on it are under way (an exec, a file transfer or a \
                                 terminal); suspend it once they end"
                            .into(),
                    });
                }
                if !self.s.fleet.is_up(l.container.engine) {
                    return Err(LeaseError::EngineUnavailable {
                        lease: id.into(),
                        engine: l.engine.clone(),
                        reason: self.s.fleet.last_error(l.container.engine),
                    });
                }
                l.hib = Hib::Suspending;
                Ok(Some((l.container.created.id.clone(), l.container.engine)))
            })
            .ok_or_else(|| self.no_lease(id))??;
        let Some((cid, engine)) = begun else {
            return self.lease(id);
        };
        let started = Instant::now();
        let backend = self.s.fleet.backend(engine).clone();
        let r = call(HIBERNATE_TIMEOUT, backend.suspend(&cid)).await;
        let settled = match r {
            Ok(()) => Ok(Hibernation::Checkpointed),
            Err(BackendError::Unsupported(reason)) => {
                self.set_hib(id, Hib::Running);
                return Err(LeaseError::CannotSuspend {
                    lease: id.into(),
                    reason,
                });
            }
            Err(e) => {
                warn!(lease = id, container = %cid, error = %e, "suspend failed; asking the engine where the container stands");
                match call(SETTLE_TIMEOUT, backend.hibernation(&cid)).await {
                    Ok(h) => Ok(h).and_then(|h| match h {
                        Hibernation::Running => Err(e),
                        h => Ok(h),
                    }),
                    // Unreachable: the container is stopped or being stopped by the checkpoint
                    // the engine may still finish; the next resume finds out which.
                    Err(_) => Ok(Hibernation::Checkpointed),
                }
            }
        };
        match settled {
            Ok(Hibernation::Checkpointed) => {
                let took = started.elapsed();
                let at = self.s.rt.clock().wall(Instant::now());
                self.settle_suspended(id, at, Some(took));
                info!(lease = id, container = %cid, ?cause, took_ms = took.as_millis() as u64, "lease suspended");
                self.lease(id)
            }
            Ok(_) => Err(self.lose(id, "suspend")),
            Err(e) => {
                self.set_hib(id, Hib::Running);
                Err(LeaseError::Backend {
                    lease: id.into(),
                    source: e,
                })
            }
        }
    }

    async fn resume_now(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        let turn = self
            .s
            .leases
            .with(id, |l| l.turn.clone())
            .ok_or_else(|| self.no_lease(id))?;
        let _turn = turn.lock().await;
        let begun = self
            .s
            .leases
            .with(id, |l| {
                let Hib::Suspended(at) = l.hib else {
                    return Ok(None);
                };
                if !self.s.fleet.is_up(l.container.engine) {
                    return Err(LeaseError::EngineUnavailable {
                        lease: id.into(),
                        engine: l.engine.clone(),
                        reason: self.s.fleet.last_error(l.container.engine),
                    });
                }
                l.hib = Hib::Resuming(at);
                Ok(Some((
                    l.container.created.id.clone(),
                    l.container.engine,
                    at,
                )))
            })
            .ok_or_else(|| self.no_lease(id))??;
        let Some((cid, engine, at)) = begun else {
            return self.lease(id);
        };
        let started = Instant::now();
        let backend = self.s.fleet.backend(engine).clone();
        let settled = match call(HIBERNATE_TIMEOUT, backend.resume(&cid)).await {
            Ok(()) => Ok(Hibernation::Running),
            Err(e) => {
                warn!(lease = id, container = %cid, error = %e, "resume failed; asking the engine where the container stands");
                match call(SETTLE_TIMEOUT, backend.hibernation(&cid)).await {
                    Ok(Hibernation::Checkpointed) => Err(e),
                    Ok(h) => Ok(h),
                    // The engine went away: the container stays stopped with its checkpoint
                    // (or comes back running, which the next resume finds).
                    Err(_) => Err(e),
                }
            }
        };
        match settled {
            Ok(Hibernation::Running) => {
                let took = started.elapsed();
                self.settle_resumed(id, Some(took));
                info!(lease = id, container = %cid, took_ms = took.as_millis() as u64, "lease resumed");
                self.lease(id)
            }
            Ok(_) => Err(self.lose(id, "resume")),
            Err(e) => {
                self.set_hib(id, Hib::Suspended(at));
                Err(match e {
                    BackendError::Unavailable(reason) => LeaseError::EngineUnavailable {
                        lease: id.into(),
                        engine: self.s.fleet.name(engine).to_string(),
                        reason,
                    },
                    source => LeaseError::Backend {
                        lease: id.into(),
                        source,
                    },
                })
            }
        }
    }

    /// Begin an operation on lease `id` (see `lease_op`), resuming a suspended lease first
    /// when its pool says so; otherwise a suspended lease answers `Suspended`.
    pub(super) async fn awake_op(&self, id: &str) -> Result<LeaseOp, LeaseError> {
        // A suspend may slip in between the resume and the entry (an idle suspend, another
        // client's request): try again, a few times.
        for _ in 0..3 {
            match self.lease_op(id) {
                Err(LeaseError::Suspended { .. }) => {}
                r => return r,
            }
            let refuse = self
                .s
                .leases
                .with(id, |l| {
                    l.pool.cfg().hibernation.on_suspended == OnSuspended::Refuse
                })
                .ok_or_else(|| self.no_lease(id))?;
            if refuse {
                return Err(LeaseError::Suspended { lease: id.into() });
            }
            self.resume(id).await?;
        }
        self.lease_op(id)
    }

    /// Suspend every lease idle for its pool's `suspend_after_idle`, each on a task of its
    /// own; returns how many were started.
    pub(crate) fn suspend_idle(&self, now: Instant) -> usize {
        let idle = self.s.leases.idle(now);
        for id in &idle {
            let this = self.clone();
            let id = id.clone();
            self.s.rt.tracker().spawn(async move {
                match this.suspend_now(&id, SuspendCause::Idle).await {
                    Ok(_) => {}
                    Err(e) => info!(lease = %id, error = %e, "idle lease not suspended"),
                }
            });
        }
        idle.len()
    }

    /// Back to `hib` after a suspend or resume that did not change it. A lease back to
    /// running counts as used now, so an idle suspend that failed waits a whole idle period
    /// before it tries again rather than asking the engine at every tick.
    fn set_hib(&self, id: &str, hib: Hib) {
        self.s.leases.with(id, |l| {
            l.hib = hib;
            if hib == Hib::Running {
                l.last_used = Instant::now();
            }
        });
    }

    /// The checkpoint is on disk (or, the engine gone, may be): the lease is suspended.
    /// `took`: how long the suspend took (`None`: settled without one).
    fn settle_suspended(&self, id: &str, at: SystemTime, took: Option<Duration>) {
        let clock = self.s.rt.clock();
        let found = self.s.leases.with(id, |l| {
            // The books first: the lease ended meanwhile leaves them at `removing`, and the
            // lease is then no longer in the table either.
            l.pool.lock().suspended(l.container.key(), took);
            l.hib = Hib::Suspended(at);
            l.hibernated = true;
            // A restored process tree is not the one the baseline recorded.
            l.container.baseline = None;
            self.s.persist.record(|| Change::PutLease(l.record(clock)));
            Tagged::of(l)
        });
        self.emit_tagged("suspended", found);
    }

    fn settle_resumed(&self, id: &str, took: Option<Duration>) {
        let clock = self.s.rt.clock();
        let found = self.s.leases.with(id, |l| {
            l.pool.lock().resumed(l.container.key(), took);
            l.hib = Hib::Running;
            l.last_used = Instant::now();
            self.s.persist.record(|| Change::PutLease(l.record(clock)));
            Tagged::of(l)
        });
        self.emit_tagged("resumed", found);
    }

    /// The container's memory is lost (stopped without a checkpoint, or gone): the lease ends
    /// and its container is removed.
    fn lose(&self, id: &str, during: &str) -> LeaseError {
        let reason = format!("its {during} failed and the engine holds no checkpoint of it");
        warn!(
            lease = id,
            during, "lease lost its container's memory; ending it"
        );
        if let Some(lease) = self.s.leases.remove(id) {
            lease.pool.lock().hibernation_lost();
            self.retire_lease(lease, LeaseEnd::Other, "hibernation failed");
        }
        LeaseError::ContainerGone {
            lease: id.into(),
            reason,
        }
    }

    /// A hibernation event about the lease `found` names, when it was still in the table.
    fn emit_tagged(&self, kind: &'static str, found: Option<Tagged>) {
        if let Some(t) = found {
            self.s.events.emit(
                kind,
                &t.pool,
                Some((&t.container, t.engine)),
                Some(crate::events::LeaseTag {
                    id: &t.lease,
                    tenant: t.tenant.as_deref(),
                }),
                None,
            );
        }
    }
}

/// What an event about a lease names, read under the lease table's lock.
struct Tagged {
    pool: String,
    container: String,
    engine: crate::caps::EngineIx,
    lease: String,
    tenant: Option<String>,
}

impl Tagged {
    fn of(l: &crate::lease::Lease) -> Self {
        Self {
            pool: l.pool.name(),
            container: l.container.created.id.clone(),
            engine: l.container.engine,
            lease: l.id.clone(),
            tenant: l.tenant.clone(),
        }
    }
}

fn task_failed(id: &str, what: &str, e: tokio::task::JoinError) -> LeaseError {
    LeaseError::Backend {
        lease: id.into(),
        source: BackendError::Unavailable(format!("{what} task failed: {e}")),
    }
}
