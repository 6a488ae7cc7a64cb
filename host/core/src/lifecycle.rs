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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError};
use crate::caps::EngineIx;
use crate::lease_store::Change;
use crate::pool::{Delivery, DeliveryError, Placed, Pool, ReadyContainer};
use crate::shared::Shared;

/// Bound on an engine call that is neither a create nor an exec. The Docker client's own request
/// timeout (120 s) normally fires first, with a better message.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(150);
/// Added to an exec's own timeout for the core's deadline on it.
pub(crate) const CALL_SLACK: Duration = Duration::from_secs(30);

/// Bound on one create: the pull, the create and start, and every setup command.
fn create_deadline(cfg: &crate::config::PoolConfig) -> Duration {
    let setups = cfg.spec.setup.len() as u32 + 1;
    Duration::from_secs(15 * 60) + cfg.spec.setup_timeout.saturating_mul(setups)
}

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

    /// Create container `name` on engine `engine`, whose slot was already approved (counted as
    /// creating there). With `deliver`, it goes to that acquire (a cold create); otherwise into
    /// the pool.
    pub(crate) fn spawn_create(
        &self,
        pool: Arc<Pool>,
        name: String,
        engine: EngineIx,
        deliver: Option<oneshot::Sender<Delivery>>,
    ) {
        let this = self.clone();
        self.s.rt.tracker().spawn(async move {
            let s = &this.s;
            // Waiting for a permit stops at shutdown; a create that started is let finish, so
            // its container is known and removed rather than left half-made.
            let permit = tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => None,
                p = s.fleet.create_permit() => p,
            };
            let Some(permit) = permit else {
                pool.lock().abandon(&name, s.fleet.caps());
                if let Some(tx) = deliver {
                    let _ = tx.send(Err(DeliveryError::ShuttingDown));
                }
                pool.touch();
                return;
            };
            let t0 = Instant::now();
            // The spec and its generation are read together, so a reload in between can only
            // make this container stale, never mislabel it.
            let (cfg, generation) = (pool.cfg(), pool.generation());
            let result = call(
                create_deadline(&cfg),
                s.fleet.backend(engine).create(&cfg.name, &name, &cfg.spec),
            )
            .await;
            drop(permit);
            // Let the new container settle (without holding a create permit), then check it
            // still runs: the engine must still report it running `start_settle` after its
            // start answered, so it never hands out one the engine reported dead within that
            // time. On a loaded machine a command that exits at once can outlive the settle;
            // its lease then answers 410 once the death is reported (see `upkeep/deaths.rs`).
            let result = match result {
                Ok(created) if !cfg.start_settle.is_zero() => {
                    sleep(cfg.start_settle).await;
                    match call(CALL_TIMEOUT, s.fleet.backend(engine).check_running(&created.id)).await {
                        Ok(()) => Ok(created),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            let ms = t0.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
            let result = match result {
                // Shutdown, or a reload removed the pool, while this create ran: not wanted.
                Ok(_) if pool.cancel.is_cancelled() => Err(BackendError::Unavailable(
                    "the pool stopped while the container was created".into(),
                )),
                Ok(created) => {
                    // A reuse compares the container with what it was before any client.
                    let baseline = match &cfg.reuse {
                        Some(_) => match call(CALL_TIMEOUT, s.fleet.backend(engine).baseline(&created.id)).await {
                            Ok(b) => Some(Arc::new(b)),
                            Err(e) => {
                                warn!(pool = %cfg.name, container = %name, error = %e, "no baseline recorded; this container will not be reused");
                                None
                            }
                        },
                        None => None,
                    };
                    let now = Instant::now();
                    Ok(ReadyContainer {
                        created,
                        engine,
                        ready_at: now,
                        born: now,
                        uses: 0,
                        lendable: s.persist.born_lendable(),
                        generation,
                        baseline,
                    })
                }
                Err(e) => Err(e),
            };
            this.finish_create(&pool, name, engine, result, deliver, ms);
        });
    }

    fn finish_create(
        &self,
        pool: &Arc<Pool>,
        name: String,
        engine: EngineIx,
        result: Result<ReadyContainer, BackendError>,
        deliver: Option<oneshot::Sender<Delivery>>,
        ms: u32,
    ) {
        let s = &self.s;
        let pool_name = pool.name();
        // The engine may have reported the container's death during any await of the create
        // (start, settle, baseline): while it was in no list a death notice can reach. It
        // must not enter the pool; this is the last point before it does.
        let result = match result {
            Ok(c) if s.fleet.died_recently(&c.created.id) => Err(BackendError::Create {
                image: pool.cfg().spec.image.clone(),
                message: format!("container {name} died while it was starting"),
            }),
            other => other,
        };
        match result {
            Ok(c) => {
                let id = c.created.id.clone();
                let placed = pool.lock().created(c, ms);
                s.fleet.record_create(engine, ms);
                let engine_name = s.fleet.name(engine);
                info!(pool = %pool_name, container = %name, engine = %engine_name, ms, "container ready");
                s.events.emit(
                    "created",
                    &pool_name,
                    Some((&id, engine)),
                    None,
                    Some(format!("{ms} ms")),
                );
                s.events
                    .emit("ready", &pool_name, Some((&id, engine)), None, None);
                match placed {
                    Placed::Pooled => {
                        if pool.lock().waiters() > 0 {
                            s.persist.urge();
                        }
                    }
                    // Persisting: a cold container reaches its acquire only after the commit
                    // that records it as lendable (the commit loop hands it out).
                    Placed::Cold(c) => match deliver {
                        Some(tx) if !c.lendable => s.persist.hold(pool, c, tx),
                        Some(tx) => {
                            if let Err(Ok(c)) = tx.send(Ok(c)) {
                                pool.lock().give_back(c); // the acquire gave up; the pool keeps it
                            }
                        }
                        None => pool.lock().give_back(c),
                    },
                }
            }
            Err(e) => {
                let blame = !matches!(e, BackendError::Unavailable(_));
                let (failures, degraded) = {
                    let mut st = pool.lock();
                    let failures = st.create_failed(
                        &name,
                        engine,
                        &e,
                        blame,
                        &s.rt.cfg().breaker,
                        Instant::now(),
                    );
                    (failures, st.degraded(&s.rt.cfg().breaker))
                };
                if blame {
                    let on = s.fleet.name(engine);
                    warn!(pool = %pool_name, engine = on, failures, error = %e, "create failed");
                    if failures == s.rt.cfg().breaker.threshold {
                        s.events.emit_breaker(
                            &pool_name,
                            engine,
                            format!("open after {failures} failures: {e}"),
                        );
                        error!(pool = %pool_name, engine = on, degraded, "create breaker open");
                    }
                } else if !s.rt.cancel().is_cancelled() && !pool.cancel.is_cancelled() {
                    self.engine_state(engine, false, Some(e.to_string()));
                }
                if let Some(tx) = deliver {
                    let _ = tx.send(Err(DeliveryError::Create(e)));
                }
                // Whatever the engine made under this name goes; until then it counts.
                self.spawn_removal(
                    Holder::Pool(pool.clone()),
                    name.clone(),
                    name,
                    engine,
                    None,
                    "create failed",
                );
            }
        }
        pool.touch();
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
