//! A container's life on the engine: the create (named by the core before it is asked for),
//! the engine-side mark of a leased container, and the removal that never gives up.
//!
//! Every engine call here runs under a deadline of the core's own ([`Manager::call`]), so a
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
use crate::manager::Manager;
use crate::pool::{Delivery, DeliveryError, Placed, Pool, ReadyContainer};

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
    /// The manager's orphans: found on the engine, of no pool.
    Orphan,
}

impl<B: Backend> Manager<B> {
    /// Run an engine call under the core's own deadline.
    pub(crate) async fn call<T>(
        &self,
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

    /// Create container `name` on engine `engine`, whose slot was already approved (counted as
    /// creating there). With `deliver`, it goes to that acquire (a cold create); otherwise into
    /// the pool.
    pub(crate) fn spawn_create(
        self: &Arc<Self>,
        pool: Arc<Pool>,
        name: String,
        engine: EngineIx,
        deliver: Option<oneshot::Sender<Delivery>>,
    ) {
        let this = self.clone();
        self.tracker.spawn(async move {
            // Waiting for a permit stops at shutdown; a create that started is let finish, so
            // its container is known and removed rather than left half-made.
            let permit = tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => None,
                p = this.create_permits.clone().acquire_owned() => p.ok(),
            };
            let Some(permit) = permit else {
                pool.lock().abandon(&name, &this.cap);
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
            let result = this
                .call(
                    create_deadline(&cfg),
                    this.backend_of(engine).create(&cfg.name, &name, &cfg.spec),
                )
                .await;
            drop(permit);
            // Let the new container settle (without holding a create permit), then check it
            // still runs: the engine must still report it running `start_settle` after its
            // start answered, so it never hands out one the engine reported dead within that
            // time. On a loaded machine a command that exits at once can outlive the settle;
            // its lease then answers 410 once the death is reported (see deaths.rs).
            let result = match result {
                Ok(created) if !cfg.start_settle.is_zero() => {
                    sleep(cfg.start_settle).await;
                    match this
                        .call(
                            CALL_TIMEOUT,
                            this.backend_of(engine).check_running(&created.id),
                        )
                        .await
                    {
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
                        Some(_) => match this
                            .call(CALL_TIMEOUT, this.backend_of(engine).baseline(&created.id))
                            .await
                        {
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
                        lendable: this.born_lendable(),
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
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        name: String,
        engine: EngineIx,
        result: Result<ReadyContainer, BackendError>,
        deliver: Option<oneshot::Sender<Delivery>>,
        ms: u32,
    ) {
        let pool_name = pool.name();
        // The engine may have reported the container's death during any await of the create
        // (start, settle, baseline): while it was in no list a death notice can reach. It
        // must not enter the pool; this is the last point before it does.
        let result = match result {
            Ok(c) if self.died_recently(&c.created.id) => Err(BackendError::Create {
                image: pool.cfg().spec.image.clone(),
                message: format!("container {name} died while it was starting"),
            }),
            other => other,
        };
        match result {
            Ok(c) => {
                let id = c.created.id.clone();
                let placed = pool.lock().created(c, ms);
                self.engine(engine).record_create(ms);
                let engine_name = self.engine_name(engine);
                info!(pool = %pool_name, container = %name, engine = %engine_name, ms, "container ready");
                self.emit(
                    "created",
                    &pool_name,
                    Some((&id, engine)),
                    None,
                    Some(format!("{ms} ms")),
                );
                self.emit("ready", &pool_name, Some((&id, engine)), None, None);
                match placed {
                    Placed::Pooled => {
                        if pool.lock().waiters() > 0 {
                            self.urge_commit();
                        }
                    }
                    // Persisting: a cold container reaches its acquire only after the commit
                    // that records it as lendable.
                    Placed::Cold(c) => match deliver {
                        Some(tx) if !c.lendable => self.deliver_after_commit(pool, c, tx),
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
                        &self.cfg.breaker,
                        Instant::now(),
                    );
                    (failures, st.degraded(&self.cfg.breaker))
                };
                if blame {
                    let on = self.engine_name(engine);
                    warn!(pool = %pool_name, engine = on, failures, error = %e, "create failed");
                    if failures == self.cfg.breaker.threshold {
                        self.emit_breaker(
                            &pool_name,
                            engine,
                            format!("open after {failures} failures: {e}"),
                        );
                        error!(pool = %pool_name, engine = on, degraded, "create breaker open");
                    }
                } else if !self.cancel.is_cancelled() && !pool.cancel.is_cancelled() {
                    self.set_engine(engine, false, Some(e.to_string()));
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
    pub(crate) fn spawn_removal_of(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        c: &ReadyContainer,
        why: &'static str,
    ) {
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
        self: &Arc<Self>,
        holder: Holder,
        key: String,
        target: String,
        engine: EngineIx,
        id: Option<String>,
        why: &'static str,
    ) {
        let this = self.clone();
        self.tracker.spawn(async move {
            let mut attempt = 0u32;
            loop {
                let result = {
                    let _permit = this.remove_permits.acquire().await;
                    this.call(CALL_TIMEOUT, this.backend_of(engine).destroy(&target))
                        .await
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
                let pause = this
                    .cfg
                    .breaker
                    .backoff(attempt)
                    .min(this.cfg.remove_backoff_max);
                sleep(pause).await;
            }
            let pool_name = match &holder {
                Holder::Pool(p) => {
                    p.lock().removed(&key, &this.cap);
                    p.touch();
                    p.name()
                }
                Holder::Orphan => {
                    this.orphans.removed(&key, &this.cap);
                    for p in this.pools().values() {
                        p.touch();
                    }
                    "*".into()
                }
            };
            if let Some(id) = &id {
                // The store's lendable set keeps a container until it is gone.
                this.record(|| Change::Forget(id.clone()));
            }
            debug!(pool = %pool_name, container = %key, why, attempt, "removed");
            this.emit(
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
    pub(crate) fn spawn_mark(self: &Arc<Self>, pool: &Arc<Pool>, c: &ReadyContainer) {
        let (this, pool) = (self.clone(), pool.clone());
        let (id, key, engine) = (c.created.id.clone(), c.key().to_string(), c.engine);
        self.tracker.spawn(async move {
            let mut attempt = 0u32;
            loop {
                match this
                    .call(CALL_TIMEOUT, this.backend_of(engine).mark_used(&id, &key))
                    .await
                {
                    Ok(()) | Err(BackendError::NotFound { .. }) => return,
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        if attempt.is_power_of_two() {
                            debug!(container = %key, attempt, error = %e, "marking a leased container failed; retrying");
                        }
                    }
                }
                if !pool.lock().holds(&key) || this.cancel.is_cancelled() {
                    return;
                }
                sleep(
                    this.cfg
                        .breaker
                        .backoff(attempt)
                        .min(this.cfg.remove_backoff_max),
                )
                .await;
            }
        });
    }
}
