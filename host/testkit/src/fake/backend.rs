//! One daemon's connection to the in-memory engine: the `Backend` implementation, with the
//! few commands its exec understands (see the parent module) and a simulated `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warmpool_core::policy_logic::{Probe, ProbeResult};
use warmpool_core::{
    Backend, BackendError, BackendEvent, Baseline, ByteStream, ContainerSpec, Created, ExecOutput,
    ExecRequest, ExecSession, Existing, FileBody, LeaseSetup, Residue,
};

use super::engine::*;
use super::exec::under;

/// One daemon's connection to a [`FakeEngine`].
pub struct FakeBackend {
    pub(super) engine: Arc<FakeEngine>,
    alive: AtomicBool,
}

impl FakeBackend {
    /// A backend on an engine of its own.
    pub fn new(create_latency: Duration) -> Self {
        Self::attach(FakeEngine::new(create_latency, 1))
    }

    /// A new connection to `engine` (a daemon started again on the same engine).
    pub fn attach(engine: Arc<FakeEngine>) -> Self {
        Self {
            engine,
            alive: AtomicBool::new(true),
        }
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

    fn dead(&self) -> bool {
        !self.alive.load(Ordering::Acquire)
    }

    /// How long a write of this call is in transit, when the `slow_ops` fault rolls.
    pub(super) fn in_transit(&self) -> Option<Duration> {
        let mut w = self.state();
        let (p, t) = (w.faults.slow_ops, w.faults.slow_for);
        w.roll(p).then_some(t)
    }

    /// A write lands in container `id`: in a bind mount, a tmpfs, or the layer.
    pub(super) fn land(&self, id: &str, path: &str, data: Vec<u8>) {
        let mut w = self.state();
        if let Some(c) = w.containers.get_mut(id) {
            if c.binds.contains_key(path) {
                c.binds.insert(path.into(), data);
            } else if c.tmpfs_mounts.iter().any(|m| under(path, m)) {
                c.tmpfs.insert(path.into(), data);
            } else {
                c.files.insert(path.into(), data);
            }
        }
    }

    /// Every call passes here: a dead connection never answers; a down engine refuses; a hang
    /// fault waits out a client timeout.
    pub(super) async fn gate(&self) -> Result<(), BackendError> {
        if self.dead() {
            std::future::pending::<()>().await;
        }
        let (down, hang, hang_for) = {
            let mut w = self.state();
            let h = w.faults.hang;
            (w.down, w.roll(h), w.faults.hang_for)
        };
        if hang {
            tokio::time::sleep(hang_for).await;
            return Err(BackendError::Unavailable("request timed out".into()));
        }
        if down {
            return Err(BackendError::Unavailable("fake engine is down".into()));
        }
        Ok(())
    }

    /// After the engine acted: a dead connection never delivers the answer.
    pub(super) async fn answer<T>(&self, r: T) -> T {
        if self.dead() {
            std::future::pending::<()>().await;
        }
        r
    }

    pub(super) fn fail(
        &self,
        p: impl Fn(&Faults) -> f64,
        stage: &'static str,
        id: &str,
    ) -> Result<(), BackendError> {
        let mut w = self.state();
        let p = p(&w.faults);
        if w.roll(p) {
            return Err(BackendError::Operation {
                stage,
                container: id.into(),
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    pub(super) fn running(&self, id: &str) -> Result<(), BackendError> {
        match self.state().containers.get(id) {
            Some(c) if c.running => Ok(()),
            Some(_) => Err(BackendError::Operation {
                stage: "exec",
                container: id.into(),
                message: "container is not running".into(),
            }),
            None => Err(BackendError::NotFound {
                what: "container",
                subject: id.into(),
            }),
        }
    }
}

impl Backend for FakeBackend {
    async fn create(
        &self,
        pool: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<Created, BackendError> {
        self.gate().await?;
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
                    FakeContainer {
                        id: id.clone(),
                        name: name.into(),
                        used: false,
                        pool: pool.into(),
                        fingerprint: spec.fingerprint(&image_id),
                        image: spec.image.clone(),
                        image_id: image_id.clone(),
                        running: false,
                        created: wall,
                        files: BTreeMap::new(),
                        tmpfs: BTreeMap::from([("/dev/null".to_string(), Vec::new())]),
                        binds: BTreeMap::from([(
                            "/etc/hosts".to_string(),
                            b"127.0.0.1 localhost\n".to_vec(),
                        )]),
                        hidden: BTreeSet::new(),
                        lease_env: BTreeMap::new(),
                        procs: BTreeMap::new(),
                        tmpfs_mounts: {
                            let mut m = spec.tmpfs_paths();
                            m.push("/dev".into());
                            m
                        },
                        created_at: Instant::now(),
                        died_at: None,
                        death_reported: false,
                        next_pid: 3,
                    },
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
        self.gate().await?;
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
        self.gate().await?;
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
        self.gate().await?;
        self.running(id)?;
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
        self.gate().await?;
        self.running(id)?;
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

    async fn probe(&self, id: &str, _probe: &Probe) -> ProbeResult {
        if let Err(e) = self.gate().await.and_then(|()| self.running(id)) {
            return ProbeResult::Error {
                reason: e.to_string(),
            };
        }
        let sick = self.state().sick.contains(id);
        ProbeResult::Exec {
            exit_code: i64::from(sick),
            output: String::new(),
        }
    }

    async fn image_id(&self, _image: &str) -> Result<Option<String>, BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_inspect, "image inspect", "-")?;
        let id = self.state().image_id.clone();
        self.answer(Ok(Some(id))).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.gate().await?;
        self.answer(Ok(())).await
    }

    async fn list(&self) -> Result<Vec<Existing>, BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_inspect, "list", "-")?;
        let list = self
            .state()
            .containers
            .values()
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
        self.gate().await?;
        let n = {
            let mut w = self.state();
            let n = w.containers.len();
            w.destroyed_total += n as u64;
            w.containers.clear();
            n
        };
        self.answer(Ok(n)).await
    }

    async fn watch(&self, tx: mpsc::Sender<BackendEvent>, cancel: CancellationToken) {
        self.engine
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        cancel.cancelled().await;
    }

    async fn exit_report(&self, id: &str) -> String {
        if self.gate().await.is_err() {
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
        self.gate().await?;
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
        self.gate().await?;
        self.fail(|f| f.fail_inspect, "baseline", id)?;
        let tick = self.engine.tick();
        let b = self.baseline_of(id, tick);
        self.answer(b).await
    }

    async fn scrub(&self, id: &str, baseline: &Baseline) -> Result<(), BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_exec, "scrub", id)?;
        self.running(id)?;
        let r = self.scrub_of(id, baseline);
        self.answer(r).await
    }

    async fn residue(&self, id: &str, baseline: &Baseline) -> Result<Vec<Residue>, BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_inspect, "residue", id)?;
        self.running(id)?;
        let r = self.residue_of(id, baseline);
        self.answer(r).await
    }
}
