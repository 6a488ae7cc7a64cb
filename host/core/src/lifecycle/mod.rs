//! A container's life on the engine: the create (named by the core before it is asked for),
//! the engine-side mark of a leased container, and the removal that never gives up.
//!
//! Layer 1: [`Lifecycle`] holds no state of its own; it works on the layer-0 parts
//! ([`crate::shared`]) and calls nothing above them. What an engine call learns about the engine
//! goes to the fleet, the pools' masks and the events ([`Lifecycle::engine_state`]); the monitor
//! (`upkeep`) reacts to an engine coming back. A cold container that must wait for a commit is
//! held by the group commit ([`crate::group_commit`]); the commit loop hands it out.
//!
//! Every engine call here runs under a deadline of the core's own ([`call`]), so a
//! backend that hangs can delay a container but never stall a loop. A container leaves the
//! books only when a removal succeeded: until then it counts against every cap, whatever the
//! engine's state, which is what keeps "the engine never holds more than `max_containers`" true
//! through outages.
//!
//! Here: the removal, the mark and the engine's state; `create.rs`: the create.

mod create;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::sleep;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError};
use crate::caps::EngineIx;
use crate::lease_store::Change;
use crate::pool::{Pool, ReadyContainer};
use crate::shared::Shared;

/// Bound on an engine call that is neither a create nor an exec. The Docker client's own request
/// timeout (120 s) normally fires first, with a better message.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(150);
/// Added to an exec's own timeout for the core's deadline on it.
pub(crate) const CALL_SLACK: Duration = Duration::from_secs(30);

/// Who counts a container that is being removed.
#[derive(Clone)]
pub(crate) enum Holder {
    Pool(Arc<Pool>),
    /// The fleet's orphans: found on the engine, of no pool.
    Orphan,
}

/// Run an engine call under the core's own deadline.
pub(crate) async fn call<T>(
    within: Duration,
    fut: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(within, fut).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Unavailable(format!(
            "the engine did not answer within {within:?}"
        ))),
    }
}

/// Creates, removals and marks of containers on the engines (see the module doc). Cheap to
/// clone: the tasks it spawns hold a clone.
pub(crate) struct Lifecycle<B> {
    s: Arc<Shared<B>>,
}

impl<B> Clone for Lifecycle<B> {
    fn clone(&self) -> Self {
        Self { s: self.s.clone() }
    }
}

impl<B: Backend> Lifecycle<B> {
    pub fn new(s: Arc<Shared<B>>) -> Self {
        Self { s }
    }

    /// Engine `e` was found up or down. A change reaches every pool's books at once (only
    /// containers on engines that are up are handed out) and the event stream. `true` when the
    /// engine just came up: the caller (the monitor) then compares it with the books.
    pub(crate) fn engine_state(&self, e: EngineIx, up: bool, err: Option<String>) -> bool {
        let s = &self.s;
        if !s.fleet.set_up(e, up, err.as_deref()) {
            return false;
        }
        let mask = s.fleet.up_mask();
        for p in s.books.all() {
            p.lock().set_up_mask(mask);
            p.touch();
        }
        let name = s.fleet.name(e);
        if up {
            info!(engine = %name, "container engine reachable");
            s.events.emit_engine("engine_up", e, None);
        } else {
            error!(engine = %name, error = err.as_deref().unwrap_or(""), "container engine unreachable");
            s.events.emit_engine("engine_down", e, err);
        }
        up
    }

    /// Remove a pool's container already moved to removing in its books.
    pub(crate) fn spawn_removal_of(&self, pool: &Arc<Pool>, c: &ReadyContainer, why: &'static str) {
        self.spawn_removal(
            Holder::Pool(pool.clone()),
            c.key().to_string(),
            c.created.id.clone(),
            c.engine,
            Some(c.created.id.clone()),
            why,
        );
    }

    /// Remove `target` (an engine ID, or the name of a create whose answer never came) from
    /// engine `engine`, and only then let `holder` forget `key` and free its slot. Retries with
    /// back-off for as long as it takes: through an outage, and through shutdown until the
    /// process exits.
    pub(crate) fn spawn_removal(
        &self,
        holder: Holder,
        key: String,
        target: String,
        engine: EngineIx,
        id: Option<String>,
        why: &'static str,
    ) {
        let this = self.clone();
        self.s.rt.tracker().spawn(async move {
            let s = &this.s;
            let mut attempt = 0u32;
            loop {
                let result = {
                    let _permit = s.fleet.remove_permit().await;
                    call(CALL_TIMEOUT, s.fleet.backend(engine).destroy(&target)).await
                };
                let Err(e) = result else { break };
                attempt = attempt.saturating_add(1);
                if let Holder::Pool(p) = &holder {
                    p.lock().remove_retried();
                }
                // Attempts 1, 2, 4, 8, …: an outage must not flood the log.
                if attempt.is_power_of_two() {
                    warn!(container = %key, attempt, error = %e, "removal failed; it stays counted and is retried");
                }
                let pause = s
                    .rt
                    .cfg()
                    .breaker
                    .backoff(attempt)
                    .min(s.rt.cfg().remove_backoff_max);
                sleep(pause).await;
            }
            let pool_name = match &holder {
                Holder::Pool(p) => {
                    p.lock().removed(&key, s.fleet.caps());
                    p.touch();
                    p.name()
                }
                Holder::Orphan => {
                    s.fleet.orphan_removed(&key);
                    for p in s.books.serving().values() {
                        p.touch();
                    }
                    "*".into()
                }
            };
            if let Some(id) = &id {
                // The store's lendable set keeps a container until it is gone.
                s.persist.record(|| Change::Forget(id.clone()));
            }
            debug!(pool = %pool_name, container = %key, why, attempt, "removed");
            s.events.emit(
                "removed",
                &pool_name,
                id.as_deref().map(|id| (id, engine)),
                None,
                Some(why.to_string()),
            );
        });
    }

    /// Mark a container that a client now holds as leased once, on the engine (a rename), so
    /// that no restart ever re-adopts it, whatever the store holds. Off the acquire path;
    /// retried until it lands or the container leaves the books.
    pub(crate) fn spawn_mark(&self, pool: &Arc<Pool>, c: &ReadyContainer) {
        let (this, pool) = (self.clone(), pool.clone());
        let (id, key, engine) = (c.created.id.clone(), c.key().to_string(), c.engine);
        self.s.rt.tracker().spawn(async move {
            let s = &this.s;
            let mut attempt = 0u32;
            loop {
                match call(CALL_TIMEOUT, s.fleet.backend(engine).mark_used(&id, &key)).await {
                    Ok(()) | Err(BackendError::NotFound { .. }) => return,
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        if attempt.is_power_of_two() {
                            debug!(container = %key, attempt, error = %e, "marking a leased container failed; retrying");
                        }
                    }
                }
                if !pool.lock().holds(&key) || s.rt.cancel().is_cancelled() {
                    return;
                }
                sleep(
                    s.rt.cfg()
                        .breaker
                        .backoff(attempt)
                        .min(s.rt.cfg().remove_backoff_max),
                )
                .await;
            }
        });
    }
}
