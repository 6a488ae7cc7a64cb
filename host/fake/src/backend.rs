//! One daemon's connection to the in-memory engine: the `Backend` implementation, with the
//! few commands its exec understands (see the crate's table) and a simulated `kill -9`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warmpool_core::policy_logic::{Probe, ProbeResult};
use warmpool_core::{
    Backend, BackendError, BackendEvent, Baseline, ByteStream, ContainerSpec, Created, ExecOutput,
    ExecRequest, ExecSession, Existing, FileBody, Hibernation, LeaseSetup, Residue, Resources,
    Runtimes,
};

use crate::engine::*;
use crate::gate::{CALL_DEADLINE, PING_DEADLINE};

/// One daemon's connection to a [`FakeEngine`].
pub struct FakeBackend {
    pub(crate) engine: Arc<FakeEngine>,
    pub(crate) alive: Arc<AtomicBool>,
    /// This connection's number on its engine (the engine's `current_conn` is the last one's).
    pub(crate) conn: u64,
    /// Where this connection's daemon hears of deaths (its `watch`), for the agent's reports.
    events: Mutex<Option<mpsc::Sender<BackendEvent>>>,
}

/// The `host_id` the fake's connections list and sweep: containers of any other are never
/// theirs.
pub const FAKE_HOST: &str = "fake";

impl FakeBackend {
    /// A backend on an engine of its own.
    pub fn new(create_latency: Duration) -> Self {
        Self::attach(FakeEngine::new(create_latency, 1))
    }

    /// A new connection to `engine` (a daemon started again on the same engine).
    pub fn attach(engine: Arc<FakeEngine>) -> Self {
        let conn = {
            let mut w = engine.state();
            w.current_conn += 1;
            w.current_conn
        };
        Self {
            engine,
            alive: Arc::new(AtomicBool::new(true)),
            conn,
            events: Mutex::default(),
        }
    }

    /// This connection's daemon's event channel, once it watches.
    pub(crate) fn events(&self) -> Option<mpsc::Sender<BackendEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The engine this connection talks to.
    pub fn engine(&self) -> &Arc<FakeEngine> {
        &self.engine
    }

    /// Lock the engine's state, to read or change it.
    pub fn state(&self) -> MutexGuard<'_, World> {
        self.engine.state()
    }

    /// IDs of the containers on the engine, in any state.
    pub fn live(&self) -> BTreeSet<String> {
        self.engine.state().ids()
    }

    /// Simulate `docker kill`: the container stops and the engine reports its death.
    pub async fn kill(&self, id: &str) {
        self.engine.kill(id, "killed");
        tokio::task::yield_now().await;
    }

    /// The daemon behind this connection was killed: nothing it asks ever happens again (a
    /// call already at the engine completes there, but its answer never arrives).
    pub fn crash(&self) {
        self.alive.store(false, Ordering::Release);
    }

    pub(crate) fn dead(&self) -> bool {
        !self.alive.load(Ordering::Acquire)
    }
}

/// A create that arrived while its pool's breaker was open (a trial), counted per pool and
/// connection until it answers or its caller drops it.
struct Trial<'a> {
    engine: &'a FakeEngine,
    key: (String, u64),
    name: String,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        self.engine
            .state()
            .trials_in_flight
            .retain(|(k, n, _)| *k != self.key || *n != self.name);
    }
}

impl FakeBackend {
    /// A create for `pool` arrives: under an open breaker it is a trial, and no other trial
    /// of the pool may be in flight here. Creates arriving in the same instant are not held
    /// against each other: the daemon may have approved them together just before the failure
    /// that opened the breaker (a create approved before may also arrive later, once it has a
    /// create permit, and then counts as a trial here: a wider check than the daemon's).
    fn arrived(&self, pool: &str, name: &str) -> Option<Trial<'_>> {
        let open = self
            .engine
            .breaker_open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|f| f(pool));
        if !open || self.dead() {
            return None;
        }
        let now = Instant::now();
        let mut w = self.state();
        let key = (pool.to_string(), self.conn);
        let earlier: Vec<String> = w
            .trials_in_flight
            .iter()
            .filter(|(k, _, at)| *k == key && *at < now)
            .map(|(_, n, _)| n.clone())
            .collect();
        w.trials_in_flight
            .push((key.clone(), name.to_string(), now));
        w.trials += 1;
        if !earlier.is_empty() {
            w.late.push(format!(
                "a create for pool {pool} ({name}) arrived while its breaker was open and another trial ({earlier:?}) was in flight: more than one trial at a time"
            ));
        }
        Some(Trial {
            engine: &self.engine,
            key,
            name: name.to_string(),
        })
    }
}

impl Backend for FakeBackend {
    async fn create(
        &self,
        pool: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<Created, BackendError> {
        // The daemon's deadline on a create: 15 minutes and each setup command's bound.
        let bound = Duration::from_secs(15 * 60)
            + spec
                .setup_timeout
                .saturating_mul(spec.setup.len() as u32 + 1);
        let _trial = self.arrived(pool, name);
        self.gate("create", bound).await?;
        if let Some(r) = &spec.runtime {
            let mut w = self.state();
            if !w.runtimes.has(r) {
                // As Docker answers; and a broken promise: placement sends a pool that names
                // a runtime only to engines that list it.
                let have = w.runtimes.names.clone();
                w.late.push(format!(
                    "a create for pool {pool} ({name}) with runtime {r:?} reached an engine without it ({have:?})"
                ));
                return Err(BackendError::Create {
                    image: spec.image.clone(),
                    message: format!("unknown or invalid runtime name: {r}"),
                });
            }
            w.runtime_creates += 1;
        }
        // The engine decides at once whether the create is refused; otherwise it records the
        // container (created, not running) before it starts it, as Docker does. A daemon killed
        // meanwhile leaves that record behind.
        let tick = self.engine.tick();
        let wall = self.engine.wall();
        let (refused, dies, id, image_id, latency) = {
            let mut w = self.state();
            let latency = match w.create_spread {
                Some(spread) => spread.draw(&mut w.rng),
                None => self.engine.create_latency,
            };
            w.creating_now += 1;
            w.creating_peak = w.creating_peak.max(w.creating_now);
            let fail_create = w.faults.fail_create;
            let refused = if let Some(msg) = w.fail_always.clone() {
                Some((msg, false))
            } else if w.fail_next > 0 {
                w.fail_next -= 1;
                Some(("injected failure".to_string(), false))
            } else if w.roll(fail_create) {
                // Half the failures leave a container behind (a start that failed).
                let leaves = w.rng.bool();
                Some(("injected failure".to_string(), leaves))
            } else {
                None
            };
            let die_at_start = w.faults.die_at_start;
            let dies = w.roll(die_at_start);
            w.create_log.push(CreateAttempt {
                pool: pool.into(),
                at: Instant::now(),
                ok: refused.is_none() && !dies,
            });
            if refused.is_some() || dies {
                w.failures.push(Failure {
                    pool: pool.into(),
                    at: Instant::now(),
                    died: None,
                });
            }
            let image_id = w.image_id.clone();
            let id = if matches!(refused, Some((_, false))) {
                None
            } else {
                w.next_id += 1;
                let id = format!("{}-{}", w.id_prefix, w.next_id);
                w.containers.insert(
                    id.clone(),
                    FakeContainer::new(&id, name, pool, spec, &image_id, wall, FAKE_HOST),
                );
                w.created_total += 1;
                Some(id)
            };
            (refused, dies, id, image_id, latency)
        };
        tokio::time::sleep(latency).await;
        let result = {
            let mut w = self.state();
            w.creating_now -= 1;
            let start = !self.dead() && refused.is_none() && !dies;
            if let Some(c) = id.as_ref().and_then(|id| w.containers.get_mut(id)) {
                if start {
                    c.running = true;
                    c.procs.insert(
                        1,
                        FakeProc {
                            cmd: "init".into(),
                            started: tick,
                            session: None,
                        },
                    );
                    c.procs.insert(
                        2,
                        FakeProc {
                            cmd: spec.cmd.join(" "),
                            started: tick,
                            session: None,
                        },
                    );
                } else {
                    c.died_at = Some(Instant::now());
                }
            }
            match (refused, dies, id) {
                (Some((msg, false)), _, _) => Err(BackendError::Create {
                    image: spec.image.clone(),
                    message: msg,
                }),
                (Some((msg, true)), _, _) => Err(BackendError::Create {
                    image: spec.image.clone(),
                    message: format!("start: {msg}"),
                }),
                (None, true, _) => Err(BackendError::Create {
                    image: spec.image.clone(),
                    message: format!("container {name} exited at once (exit code 3): boom"),
                }),
                (None, false, Some(id)) => Ok((id, image_id)),
                (None, false, None) => unreachable!("a container is recorded unless refused"),
            }
        };
        let (id, image_id) = self.answer(result).await?;
        // A container that dies a little later: its death event comes after the answer.
        let soon = {
            let mut w = self.state();
            let p = w.faults.die_soon;
            let within = w.faults.die_within.as_millis().max(1) as u64;
            w.roll(p)
                .then(|| Duration::from_millis(w.rng.u64(0..within)))
        };
        if let Some(after) = soon {
            let engine = self.engine.clone();
            let id = id.clone();
            let pool = pool.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let alive = engine
                    .state()
                    .containers
                    .get(&id)
                    .is_some_and(|c| c.running);
                if alive {
                    engine.state().failures.push(Failure {
                        pool,
                        at: Instant::now(),
                        died: Some(id.clone()),
                    });
                    engine.kill(&id, "die (exit code 3)");
                }
            });
        }
        Ok(Created {
            id,
            name: name.into(),
            image: spec.image.clone(),
            image_id,
        })
    }

    async fn destroy(&self, id_or_name: &str) -> Result<(), BackendError> {
        self.gate("remove", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_destroy, "remove", id_or_name)?;
        {
            let mut w = self.state();
            if let Some(id) = w.find(id_or_name) {
                w.containers.remove(&id);
                w.destroyed_total += 1;
            }
        }
        self.answer(Ok(())).await
    }

    async fn mark_used(&self, id: &str, _name: &str) -> Result<(), BackendError> {
        self.gate("rename", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "rename", id)?;
        let r = match self.state().containers.get_mut(id) {
            Some(c) => {
                c.used = true;
                Ok(())
            }
            None => Err(BackendError::NotFound {
                what: "container",
                subject: id.into(),
            }),
        };
        self.answer(r).await
    }

    async fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, BackendError> {
        self.run_exec(id, req).await
    }

    async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), BackendError> {
        warmpool_core::checked_path(path)?;
        self.gate("upload", CALL_DEADLINE).await?;
        self.running(id)?;
        self.agent(id, "upload", CALL_DEADLINE).await?;
        let data = file.collect().await?;
        // A busy engine writes it a while after the body arrived, and answers only then.
        if let Some(t) = self.in_transit() {
            tokio::time::sleep(t).await;
        }
        self.land(id, path, data);
        self.answer(Ok(())).await
    }

    async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, BackendError> {
        warmpool_core::checked_path(path)?;
        self.gate("download", CALL_DEADLINE).await?;
        self.running(id)?;
        self.agent(id, "download", CALL_DEADLINE).await?;
        let w = self.state();
        let c = w.containers.get(id).expect("checked running");
        let data = c
            .files
            .get(path)
            .or_else(|| c.tmpfs.get(path))
            .or_else(|| c.binds.get(path))
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                what: "file",
                subject: path.into(),
            })?;
        Ok(FileBody::from_bytes(data))
    }

    async fn exec_session(&self, id: &str, req: ExecRequest) -> Result<ExecSession, BackendError> {
        self.session(id, req).await
    }

    async fn lease_setup(&self, id: &str, setup: &LeaseSetup) -> Result<(), BackendError> {
        self.setup_lease(id, setup).await
    }

    async fn put_tar(&self, id: &str, dir: &str, body: ByteStream) -> Result<(), BackendError> {
        self.tar_in(id, dir, body).await
    }

    async fn get_tar(&self, id: &str, path: &str) -> Result<ByteStream, BackendError> {
        self.tar_out(id, path).await
    }

    async fn update_resources(&self, id: &str, r: Resources) -> Result<(), BackendError> {
        self.gate("update", CALL_DEADLINE).await?;
        if let Err(e) = self.fail(|f| f.fail_update, "update resources", id) {
            self.state().updates[1] += 1;
            return Err(e);
        }
        self.running(id)?;
        {
            let mut w = self.state();
            let c = w.containers.get_mut(id).expect("checked running");
            // As the engine: no CPU limit asked leaves the container's as it is.
            let limits = Resources {
                nano_cpus: r.nano_cpus.or(c.limits.nano_cpus),
                memory: r.memory.or(c.limits.memory),
            };
            let restored = c.limits != c.spec_limits && limits == c.spec_limits;
            c.limits = limits;
            c.resized |= limits != c.spec_limits;
            w.updates[0] += 1;
            w.updates[2] += u64::from(restored);
        }
        self.answer(Ok(())).await
    }

    async fn probe(&self, id: &str, _probe: &Probe) -> ProbeResult {
        if let Err(e) = self
            .gate("probe", CALL_DEADLINE)
            .await
            .and_then(|()| self.running(id))
        {
            return ProbeResult::Error {
                reason: e.to_string(),
            };
        }
        if !self.agent_up(id) {
            return ProbeResult::Error {
                reason: "the agent does not answer".into(),
            };
        }
        let sick = self.state().sick.contains(id);
        ProbeResult::Exec {
            exit_code: i64::from(sick),
            output: String::new(),
        }
    }

    async fn image_id(&self, _image: &str) -> Result<Option<String>, BackendError> {
        self.gate("image inspect", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "image inspect", "-")?;
        let id = self.state().image_id.clone();
        self.answer(Ok(Some(id))).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.gate("ping", PING_DEADLINE).await?;
        self.answer(Ok(())).await
    }

    async fn runtimes(&self) -> Result<Runtimes, BackendError> {
        self.gate("info", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "info", "-")?;
        let r = self.state().runtimes.clone();
        self.answer(Ok(r)).await
    }

    async fn suspend(&self, id: &str) -> Result<(), BackendError> {
        self.fake_suspend(id).await
    }

    async fn resume(&self, id: &str) -> Result<(), BackendError> {
        self.fake_resume(id).await
    }

    async fn hibernation(&self, id: &str) -> Result<Hibernation, BackendError> {
        self.fake_hibernation(id).await
    }

    async fn list(&self) -> Result<Vec<Existing>, BackendError> {
        self.gate("list", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "list", "-")?;
        let list = self
            .state()
            .containers
            .values()
            .filter(|c| c.host == FAKE_HOST)
            .map(|c| Existing {
                id: c.id.clone(),
                name: c.name.clone(),
                pool: Some(c.pool.clone()),
                fingerprint: Some(c.fingerprint.clone()),
                image: c.image.clone(),
                image_id: c.image_id.clone(),
                running: c.running,
                used: c.used,
                created: c.created,
            })
            .collect();
        self.answer(Ok(list)).await
    }

    async fn sweep(&self) -> Result<usize, BackendError> {
        self.gate("sweep", CALL_DEADLINE).await?;
        let n = {
            let mut w = self.state();
            let n = w.containers.len();
            w.containers.retain(|_, c| c.host != FAKE_HOST);
            let n = n - w.containers.len();
            w.destroyed_total += n as u64;
            n
        };
        self.answer(Ok(n)).await
    }

    async fn watch(&self, tx: mpsc::Sender<BackendEvent>, cancel: CancellationToken) {
        self.engine
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx.clone());
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        cancel.cancelled().await;
    }

    async fn exit_report(&self, id: &str) -> String {
        if self.gate("exit report", CALL_DEADLINE).await.is_err() {
            return String::new();
        }
        let known = self.state().containers.contains_key(id);
        self.answer(if known {
            "exit code 3; log: boom".to_string()
        } else {
            String::new()
        })
        .await
    }

    async fn check_running(&self, id: &str) -> Result<(), BackendError> {
        self.gate("inspect", CALL_DEADLINE).await?;
        let r = match self.state().containers.get(id) {
            Some(c) if c.running => Ok(()),
            Some(_) => Err(BackendError::Create {
                image: "fake".into(),
                message: "the container stopped right after it started: exit code 3; log: boom"
                    .into(),
            }),
            None => Err(BackendError::NotFound {
                what: "container",
                subject: id.into(),
            }),
        };
        self.answer(r).await
    }

    async fn baseline(&self, id: &str) -> Result<Baseline, BackendError> {
        self.gate("baseline", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "baseline", id)?;
        self.agent(id, "baseline", CALL_DEADLINE).await?;
        let tick = self.engine.tick();
        let b = self.baseline_of(id, tick);
        self.answer(b).await
    }

    async fn scrub(&self, id: &str, baseline: &Baseline) -> Result<(), BackendError> {
        self.gate("scrub", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_exec, "scrub", id)?;
        self.running(id)?;
        self.agent(id, "scrub", CALL_DEADLINE).await?;
        let r = self.scrub_of(id, baseline);
        self.answer(r).await
    }

    async fn residue(&self, id: &str, baseline: &Baseline) -> Result<Vec<Residue>, BackendError> {
        self.gate("residue", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_inspect, "residue", id)?;
        self.running(id)?;
        self.agent(id, "residue", CALL_DEADLINE).await?;
        let r = self.residue_of(id, baseline);
        self.answer(r).await
    }
}
