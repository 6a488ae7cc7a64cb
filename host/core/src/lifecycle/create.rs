//! Creates: a container named by the core before it is asked for, on an engine whose slot
//! was approved, settled and checked, then into the pool, to its cold acquire, or held by the
//! group commit until a commit makes it lendable. A failed create feeds the pool's breaker (or,
//! when the engine did not answer, reports the engine down) and its name is removed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};
use tracing::{error, info, warn};

use super::{CALL_TIMEOUT, Holder, Lifecycle, call};
use crate::backend::{Backend, BackendError};
use crate::caps::EngineIx;
use crate::pool::{Delivery, DeliveryError, Placed, Pool, ReadyContainer};

/// Bound on one create: the pull, the create and start, and every setup command.
fn create_deadline(cfg: &crate::config::PoolConfig) -> Duration {
    let setups = cfg.spec.setup.len() as u32 + 1;
    Duration::from_secs(15 * 60) + cfg.spec.setup_timeout.saturating_mul(setups)
}
impl<B: Backend> Lifecycle<B> {
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
}
