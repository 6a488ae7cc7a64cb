//! Opt-in reuse with a verified reset. A released container goes back to the pool only when the
//! pool allows reuse, it is within `max_uses` and `max_lifetime`, it runs the pool's current
//! image, every reset command exits 0 and then every verify command exits 0. Anything else
//! destroys it: a container whose cleanliness is unproven is never handed to the next user.

use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::{Backend, ExecRequest};
use crate::config::ReuseConfig;
use crate::error::LeaseError;
use crate::lease::Lease;
use crate::manager::{Manager, lock};
use crate::pool::{Pool, ReadyContainer};

/// What became of a container released for reuse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReuseOutcome {
    pub lease_id: String,
    pub reused: bool,
    /// Why it was destroyed instead, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl<B: Backend> Manager<B> {
    /// End a lease, returning its container to the pool if a verified reset allows it.
    /// The reset runs on a tracked task: a client that hangs up does not leave it half done.
    pub async fn release_for_reuse(self: &Arc<Self>, id: &str) -> Result<ReuseOutcome, LeaseError> {
        let lease = lock(&self.leases)
            .remove(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        let refuse = |reason: String| ReuseOutcome {
            lease_id: id.into(),
            reused: false,
            reason: Some(reason),
        };
        let Some(reuse) = lease.pool.cfg().reuse.clone() else {
            self.retire_lease(lease, "released");
            return Ok(refuse("reuse is not enabled for this pool".into()));
        };
        if let Some(reason) = self.why_not_reuse(&lease, &reuse) {
            self.retire_lease(lease, "released");
            return Ok(refuse(reason));
        }
        // The container stays in the lendable set, so a crash during the reset destroys it at
        // restart instead of re-adopting a container with a user's files in it.
        self.lease_ended(&lease, "reuse");
        {
            let mut st = lease.pool.lock();
            st.leased -= 1;
            st.resetting += 1;
        }
        let this = self.clone();
        let (pool, container) = (lease.pool.clone(), lease.container.clone());
        let task = self
            .tracker
            .spawn(async move { this.reset_and_return(pool, container, &reuse).await });
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
        if self.cancel.is_cancelled() {
            return Some("the daemon is shutting down".into());
        }
        if lease.pool.cancel.is_cancelled() {
            return Some("the pool was removed by a config reload".into());
        }
        if lease.pool.stale_spec(c) {
            return Some("the pool's container spec changed in a config reload".into());
        }
        if c.uses >= reuse.max_uses {
            return Some(format!(
                "max_uses reached ({} of {})",
                c.uses, reuse.max_uses
            ));
        }
        if let Some(life) = lease.pool.cfg().max_lifetime
            && Instant::now().duration_since(c.born) >= life
        {
            return Some(format!("max_lifetime of {life:?} reached"));
        }
        if lease.pool.lock().stale_image(c) {
            return Some("the pool's image has moved to a new ID".into());
        }
        None
    }

    /// Run reset then verify; back to ready on success, destroyed otherwise. Returns the reason
    /// it was destroyed, if it was.
    async fn reset_and_return(
        self: &Arc<Self>,
        pool: Arc<Pool>,
        c: ReadyContainer,
        reuse: &ReuseConfig,
    ) -> Option<String> {
        let id = c.created.id.clone();
        let mut failure = None;
        for (stage, cmd) in reuse
            .reset
            .iter()
            .map(|c| ("reset", c))
            .chain(reuse.verify.iter().map(|c| ("verify", c)))
        {
            let req = ExecRequest {
                cmd: cmd.clone(),
                timeout: reuse.timeout,
                output_limit: 4096,
                ..Default::default()
            };
            match self.backend.exec(&id, req).await {
                Ok(out) if out.exit_code == Some(0) => {}
                Ok(out) if out.timed_out => failure = Some(format!("{stage} {cmd:?} timed out")),
                Ok(out) => {
                    let code = out.exit_code.unwrap_or(-1);
                    failure = Some(format!(
                        "{stage} {cmd:?} exited {code}: {}",
                        out.stderr.trim()
                    ));
                }
                Err(e) => failure = Some(format!("{stage} {cmd:?}: {e}")),
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_none() && (pool.cancel.is_cancelled() || pool.stale_spec(&c)) {
            failure = Some("the pool was removed or its spec changed during the reset".into());
        }
        let mut st = pool.lock();
        st.resetting -= 1;
        match failure {
            None => {
                st.counters.reused_total += 1;
                info!(pool = %pool.cfg().name, container = %c.created.name, uses = c.uses, "container reset, verified and back in the pool");
                let cid = c.created.id.clone();
                st.offer(ReadyContainer {
                    ready_at: Instant::now(),
                    ..c
                });
                drop(st);
                self.emit("reused", &pool.cfg().name, Some(&cid), None, None);
                pool.touch();
                None
            }
            Some(reason) => {
                st.counters.reset_failures += 1;
                st.removing += 1;
                drop(st);
                warn!(pool = %pool.cfg().name, container = %c.created.name, %reason, "reuse refused; destroying the container");
                self.emit(
                    "unhealthy",
                    &pool.cfg().name,
                    Some(&id),
                    None,
                    Some(reason.clone()),
                );
                self.spawn_destroy(pool, id, false, "reset failed");
                Some(reason)
            }
        }
    }
}
