//! Opt-in reuse with a scrub the daemon does itself. A released container goes back to the pool
//! only when the pool allows reuse, it is within `max_uses` and `max_lifetime`, it runs the
//! pool's current image and spec, and it has a baseline (what it looked like before any client).
//! Then, whatever the operator's commands say:
//!
//! 0. the lease's fence is up (the lease table raised it as it gave the lease up): no new
//!    operation starts, and those under way are stopped and waited for (`fence.rs`);
//! 1. the daemon kills every process started after the baseline and empties the places that
//!    were empty then (`/dev/shm`, `/dev/mqueue`, the spec's tmpfs mounts); a lease that
//!    changed the container's cpus or memory has the pool's put back (`leasing/resources.rs`);
//! 2. the pool's `reset` commands run;
//! 3. the daemon compares the container with its baseline, through the engine where it can
//!    (processes, filesystem changes as `docker diff` shows them, bind mounts and volumes),
//!    and every other writable place (`/dev`, every tmpfs, the mount table, SysV IPC) from
//!    inside once the engine shows nothing of the client runs or changed a program: anything
//!    left outside `reuse.allowed_changes` destroys the container, and so does a place that
//!    cannot be read whole;
//! 4. the pool's `verify` commands run.
//!
//! Anything else destroys it: a container whose cleanliness is unproven never reaches the next
//! user.

use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Leasing;
use crate::backend::{Backend, ExecRequest, Residue, Resources};
use crate::caps::EngineIx;
use crate::config::ReuseConfig;
use crate::error::LeaseError;
use crate::fence::FENCE_GRACE;
use crate::lease::Lease;
use crate::lifecycle::{CALL_SLACK, CALL_TIMEOUT, call};
use crate::pool::{LeaseEnd, Pool, ReadyContainer};

/// What became of a container released for reuse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReuseOutcome {
    /// The released lease's ID.
    pub lease_id: String,
    /// Whether the container is back in the pool; `false`: it is being removed.
    pub reused: bool,
    /// Why it was destroyed instead, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Residue items named in a refusal; the rest are counted.
const RESIDUE_SHOWN: usize = 5;

impl<B: Backend> Leasing<B> {
    /// End a lease, returning its container to the pool if the scrub and the verified reset
    /// allow it. The reset runs on a tracked task: a client that hangs up does not leave it half
    /// done.
    pub async fn release_for_reuse(&self, id: &str) -> Result<ReuseOutcome, LeaseError> {
        let lease = self.s.leases.remove(id).ok_or_else(|| self.no_lease(id))?;
        let refuse = |reason: String| ReuseOutcome {
            lease_id: id.into(),
            reused: false,
            reason: Some(reason),
        };
        let Some(reuse) = lease.pool.cfg().reuse.clone() else {
            self.retire_lease(lease, LeaseEnd::Released, "released");
            return Ok(refuse("reuse is not enabled for this pool".into()));
        };
        if let Some(reason) = self.why_not_reuse(&lease, &reuse) {
            self.retire_lease(lease, LeaseEnd::Released, "released");
            return Ok(refuse(reason));
        }
        // The container stays in the lendable set and keeps its engine-side mark, so a crash
        // during the reset removes it at restart instead of re-adopting a used container.
        self.lease_ended(&lease, "reuse");
        lease.pool.lock().reset_begin(lease.container.key());
        let this = self.clone();
        let (pool, container, ops, resized) = (
            lease.pool.clone(),
            lease.container.clone(),
            lease.ops.clone(),
            lease.resized,
        );
        let task = self.s.rt.tracker().spawn(async move {
            // The table raised the lease's fence as it gave the lease up: what was under way
            // was told to stop, and must be over before the scrub looks.
            let failure = if !ops.drained(FENCE_GRACE).await {
                Some(format!(
                    "an operation on the lease did not end within {FENCE_GRACE:?} of the release"
                ))
            } else if ops.tainted() {
                Some(
                    "an exec or upload on the lease was cut off before the engine answered; \
                     the engine may still act on it"
                        .into(),
                )
            } else {
                None
            };
            this.reset_and_return(pool, container, &reuse, failure, resized)
                .await
        });
        let reason = task
            .await
            .unwrap_or_else(|e| Some(format!("reset task failed: {e}")));
        Ok(match reason {
            None => ReuseOutcome {
                lease_id: id.into(),
                reused: true,
                reason: None,
            },
            Some(r) => refuse(r),
        })
    }

    fn why_not_reuse(&self, lease: &Lease, reuse: &ReuseConfig) -> Option<String> {
        let c = &lease.container;
        if let Some(gone) = &lease.gone {
            return Some(format!("the container is gone: {gone}"));
        }
        if self.s.rt.cancel().is_cancelled() {
            return Some("the daemon is shutting down".into());
        }
        if lease.pool.cancel.is_cancelled() {
            return Some("the pool was removed by a config reload".into());
        }
        if lease.pool.stale_spec(c) {
            return Some("the pool's container spec changed in a config reload".into());
        }
        if lease.hibernated || lease.hib != crate::lease::Hib::Running {
            return Some(
                "the lease was suspended: a restored container is never reused (its processes \
                 are not the ones the baseline recorded)"
                    .into(),
            );
        }
        if c.baseline.is_none() {
            return Some(
                "no baseline of this container was recorded (it was made before reuse was \
                 enabled, or re-attached after a restart), so a scrub could not be checked"
                    .into(),
            );
        }
        if c.uses >= reuse.max_uses {
            return Some(format!(
                "max_uses reached ({} of {})",
                c.uses, reuse.max_uses
            ));
        }
        if let Some(life) = lease.pool.cfg().max_lifetime
            && Instant::now().saturating_duration_since(c.born) >= life
        {
            return Some(format!("max_lifetime of {life:?} reached"));
        }
        if lease.pool.lock().stale_image(c) {
            return Some("the pool's image has moved to a new ID".into());
        }
        None
    }

    /// Scrub, reset, check, verify; back to ready on success, destroyed otherwise. Returns the
    /// reason it was destroyed, if it was.
    async fn reset_and_return(
        &self,
        pool: Arc<Pool>,
        c: ReadyContainer,
        reuse: &ReuseConfig,
        fenced: Option<String>,
        resized: bool,
    ) -> Option<String> {
        let restore = resized.then(|| Resources::of(&pool.cfg().spec));
        let failure = match fenced {
            Some(f) => Some(f),
            None => self.scrub_and_verify(&c, reuse, restore).await,
        };
        let failure = failure
            .or_else(|| {
                (pool.cancel.is_cancelled() || pool.stale_spec(&c)).then(|| {
                    "the pool was removed or its spec changed during the reset".to_string()
                })
            })
            // Its death notice came while it was resetting, in no list the notice reaches.
            .or_else(|| {
                self.s
                    .fleet
                    .died_recently(&c.created.id)
                    .then(|| "the container died during the reset".to_string())
            });
        let name = pool.name();
        match failure {
            None => {
                info!(pool = %name, container = %c.created.name, uses = c.uses, "container scrubbed, verified and back in the pool");
                let (cid, c_engine) = (c.created.id.clone(), c.engine);
                pool.lock().reset_passed(ReadyContainer {
                    ready_at: Instant::now(),
                    ..c
                });
                self.s
                    .events
                    .emit("reused", &name, Some((&cid, c_engine)), None, None);
                pool.touch();
                None
            }
            Some(reason) => {
                pool.lock().reset_failed(c.key());
                warn!(pool = %name, container = %c.created.name, %reason, "reuse refused; destroying the container");
                self.s.events.emit(
                    "unhealthy",
                    &name,
                    Some((&c.created.id, c.engine)),
                    None,
                    Some(reason.clone()),
                );
                self.life.spawn_removal_of(&pool, &c, "reset failed");
                Some(reason)
            }
        }
    }

    async fn scrub_and_verify(
        &self,
        c: &ReadyContainer,
        reuse: &ReuseConfig,
        restore: Option<Resources>,
    ) -> Option<String> {
        let (id, engine) = (&c.created.id, c.engine);
        let backend = self.s.fleet.backend(engine);
        let baseline = c.baseline.as_deref()?;
        // 1. The daemon's own scrub, whatever the operator's commands say.
        if let Err(e) = call(CALL_TIMEOUT, backend.scrub(id, baseline)).await {
            return Some(format!("scrub: {e}"));
        }
        // 1b. The pool's own limits back, after the scrub killed the client's processes (with
        // them running, a lower memory limit could fail or kill them), and before anything
        // that proves the container fit for the next client.
        if let Some(r) = restore
            && let Err(e) = call(CALL_TIMEOUT, backend.update_resources(id, r)).await
        {
            return Some(format!("putting the pool's cpus and memory back: {e}"));
        }
        // 2. The operator's reset.
        if let Some(f) = self.run_all("reset", &reuse.reset, id, engine, reuse).await {
            return Some(f);
        }
        // 3. What is left, read through the engine.
        let residue = match call(CALL_TIMEOUT, backend.residue(id, baseline)).await {
            Ok(r) => r,
            Err(e) => return Some(format!("checking the scrub: {e}")),
        };
        let left: Vec<Residue> = residue
            .into_iter()
            .filter(|r| !allowed(r, &reuse.allowed_changes))
            .collect();
        if !left.is_empty() {
            let shown: Vec<String> = left
                .iter()
                .take(RESIDUE_SHOWN)
                .map(ToString::to_string)
                .collect();
            let more = left.len().saturating_sub(RESIDUE_SHOWN);
            return Some(format!(
                "the last client left {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        // 4. The operator's verify.
        self.run_all("verify", &reuse.verify, id, engine, reuse)
            .await
    }

    async fn run_all(
        &self,
        stage: &str,
        cmds: &[Vec<String>],
        id: &str,
        engine: EngineIx,
        reuse: &ReuseConfig,
    ) -> Option<String> {
        for cmd in cmds {
            let req = ExecRequest {
                cmd: cmd.clone(),
                timeout: reuse.timeout,
                output_limit: 4096,
                ..Default::default()
            };
            match call(
                reuse.timeout + CALL_SLACK,
                self.s.fleet.backend(engine).exec(id, req),
            )
            .await
            {
                Ok(out) if out.exit_code == Some(0) => {}
                Ok(out) if out.timed_out => return Some(format!("{stage} {cmd:?} timed out")),
                Ok(out) => {
                    let code = out.exit_code.unwrap_or(-1);
                    return Some(format!(
                        "{stage} {cmd:?} exited {code}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Err(e) => return Some(format!("{stage} {cmd:?}: {e}")),
            }
        }
        None
    }
}

/// Whether a residue item lies under one of the pool's `allowed_changes` paths.
fn allowed(r: &Residue, allowed: &[String]) -> bool {
    let path = match r {
        Residue::Path(c) => &c.path,
        Residue::Place { path, .. } => path,
        Residue::Process(_) => return false,
    };
    allowed.iter().any(|a| {
        let a = a.trim_end_matches('/');
        path == a || path.starts_with(&format!("{a}/"))
    })
}

#[cfg(test)]
mod tests {
    use super::allowed;
    use crate::backend::{ChangeKind, FsChange, Residue};

    #[test]
    fn allowed_changes_are_path_prefixes() {
        let at = |p: &str| {
            Residue::Path(FsChange {
                kind: ChangeKind::Added,
                path: p.into(),
            })
        };
        let ok = vec!["/root/.cache".to_string()];
        assert!(allowed(&at("/root/.cache"), &ok));
        assert!(allowed(&at("/root/.cache/pip/x"), &ok));
        assert!(!allowed(&at("/root/.cache2"), &ok));
        assert!(!allowed(&at("/root"), &ok));
        assert!(!allowed(&Residue::Process("1 sh".into()), &ok));
    }
}
