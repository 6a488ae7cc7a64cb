//! An in-memory container engine for tests of the pool logic (run under paused tokio time), of
//! the API, and for the fault simulation.
//!
//! [`FakeEngine`] is the world: containers with their files, tmpfs contents and processes, and
//! the faults to inject. [`FakeBackend`] is one daemon's connection to it; a simulated `kill -9`
//! ([`FakeBackend::crash`]) makes every later call through that connection hang forever, while
//! the engine (and what a create in flight made) stays, as a real engine would.
//!
//! Exec understands a few commands, so tests can act as clients:
//!
//! | command                     | does                                                        |
//! |-----------------------------|-------------------------------------------------------------|
//! | `write PATH TEXT`           | writes a file (into the tmpfs when under one)               |
//! | `spawn TAG`                 | leaves a background process in the exec's session           |
//! | `sleep MS`                  | runs MS ms; past its timeout, its session's processes die   |
//! | `clean DIR…`                | removes the files under each DIR                            |
//! | `check-empty DIR…`          | exits 1 if a file remains under a DIR                       |
//! | `die`                       | the container's main process exits                          |
//! | `false`                     | exits 1                                                     |
//! | anything else               | exits 0, echoing the command                                |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warmpool_core::policy_logic::{Probe, ProbeResult};
use warmpool_core::{
    Backend, BackendError, BackendEvent, Baseline, ChangeKind, ContainerSpec, Created, ExecOutput,
    ExecRequest, Existing, FileBody, FsChange, Residue,
};

/// The engine's wall clock at its start: a fixed time, so that replays see the same times.
pub fn wall_origin() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Faults to inject; probabilities are per call, drawn from the engine's seeded generator.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// A create fails (before or after the container exists, at random).
    pub fail_create: f64,
    /// A destroy fails.
    pub fail_destroy: f64,
    /// An exec or a scrub fails.
    pub fail_exec: f64,
    /// `list`, `baseline`, `residue`, `mark_used` and `image_id` fail.
    pub fail_inspect: f64,
    /// A call hangs for `hang_for`, then fails as a client timeout would.
    pub hang: f64,
    /// How long a `hang` fault waits before failing.
    pub hang_for: Duration,
    /// A new container's main process exits right after start (the create sees it stopped),
    /// or within `die_within` after the create answered.
    pub die_at_start: f64,
    /// A started container's main process exits within `die_within` after the create answered.
    pub die_soon: f64,
    /// Upper bound on how long after the create answered a `die_soon` death comes.
    pub die_within: Duration,
    /// A death event is never delivered.
    pub lose_events: f64,
}

/// One process in a fake container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProc {
    /// Its command line (or the tag given to `spawn`).
    pub cmd: String,
    /// Milliseconds since the engine started, when it started.
    pub started: u64,
    /// The exec that started it, if any.
    pub session: Option<u64>,
}

/// A container on the fake engine, with its files, tmpfs contents and processes.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    /// Its engine ID (`fake-N`).
    pub id: String,
    /// The name the core chose (without the used mark).
    pub name: String,
    /// Whether the core marked it used (`mark_used`).
    pub used: bool,
    /// The pool it was created for.
    pub pool: String,
    /// The spec's fingerprint with the image ID it was created from.
    pub fingerprint: String,
    /// The image reference from the spec.
    pub image: String,
    /// The image ID it was created from.
    pub image_id: String,
    /// Whether its main process is running.
    pub running: bool,
    /// When it was created, on the engine's wall clock.
    pub created: SystemTime,
    /// The writable layer: files written since create.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Files in the container's tmpfs mounts (`/dev/shm`, …), invisible to the layer diff.
    pub tmpfs: BTreeMap<String, Vec<u8>>,
    /// Its processes by PID: 1 is `init`, 2 the main command, later ones from execs.
    pub procs: BTreeMap<u64, FakeProc>,
    /// Paths of its tmpfs mounts, from the spec.
    pub tmpfs_mounts: Vec<String>,
    /// When the create made it (tokio's clock).
    pub created_at: Instant,
    /// When it stopped (its start failed, or it was killed), by tokio's clock.
    pub died_at: Option<Instant>,
    /// Whether its death was reported to watchers (read by the simulation's lease checks).
    pub death_reported: bool,
    next_pid: u64,
}

/// A create as the engine saw it (for the storm checks of the simulation).
#[derive(Debug, Clone)]
pub struct CreateAttempt {
    /// The pool the create was for.
    pub pool: String,
    /// When the engine received it (tokio's clock).
    pub at: Instant,
    /// Whether the create was neither refused nor given a death at start.
    pub ok: bool,
}

/// A container that could not stay up: a failed create, or a death the engine caused itself
/// soon after a create (the storm checks count these).
#[derive(Debug, Clone)]
pub struct Failure {
    /// The pool the container was created for.
    pub pool: String,
    /// When it failed or died (tokio's clock).
    pub at: Instant,
}

/// The engine's whole state; tests may read and change it through [`FakeBackend::state`].
#[derive(Debug)]
pub struct World {
    /// The containers on the engine, by ID, in any state.
    pub containers: BTreeMap<String, FakeContainer>,
    /// The faults injected now.
    pub faults: Faults,
    /// The engine is unreachable while set.
    pub down: bool,
    /// Fail this many creates from now on.
    pub fail_next: u32,
    /// Fail every create with this message while set.
    pub fail_always: Option<String>,
    /// Containers whose health probe fails.
    pub sick: BTreeSet<String>,
    /// What the pools' image resolves to; new containers get it.
    pub image_id: String,
    /// Containers recorded by creates so far (including failed starts that left one behind).
    pub created_total: u64,
    /// Containers removed so far, by `destroy` or `sweep`.
    pub destroyed_total: u64,
    /// Creates in flight now.
    pub creating_now: u32,
    /// The most creates ever in flight at once.
    pub creating_peak: u32,
    /// Every create attempt, in order.
    pub create_log: Vec<CreateAttempt>,
    /// Failed creates and early deaths, in order.
    pub failures: Vec<Failure>,
    rng: fastrand::Rng,
    next_id: u64,
    next_session: u64,
}

impl World {
    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    /// IDs of the containers on the engine, in any state.
    pub fn ids(&self) -> BTreeSet<String> {
        self.containers.keys().cloned().collect()
    }

    fn find(&self, id_or_name: &str) -> Option<String> {
        if self.containers.contains_key(id_or_name) {
            return Some(id_or_name.to_string());
        }
        self.containers
            .values()
            .find(|c| c.name == id_or_name)
            .map(|c| c.id.clone())
    }
}

/// The simulated engine, shared by every connection to it.
pub struct FakeEngine {
    /// How long a create takes between its record and its start (tokio's clock).
    pub create_latency: Duration,
    started: Instant,
    world: Mutex<World>,
    watchers: Mutex<Vec<mpsc::Sender<BackendEvent>>>,
}

impl FakeEngine {
    /// An empty, healthy engine whose creates take `create_latency`; `seed` drives its faults.
    pub fn new(create_latency: Duration, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            create_latency,
            started: Instant::now(),
            world: Mutex::new(World {
                containers: BTreeMap::new(),
                faults: Faults::default(),
                down: false,
                fail_next: 0,
                fail_always: None,
                sick: BTreeSet::new(),
                image_id: "sha256:one".into(),
                created_total: 0,
                destroyed_total: 0,
                creating_now: 0,
                creating_peak: 0,
                create_log: Vec::new(),
                failures: Vec::new(),
                rng: fastrand::Rng::with_seed(seed),
                next_id: 0,
                next_session: 0,
            }),
            watchers: Mutex::default(),
        })
    }

    /// Lock the engine's state (a poisoned lock is taken over), to read or change it.
    pub fn state(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds since the engine started: the clock of its processes.
    pub fn tick(&self) -> u64 {
        Instant::now().duration_since(self.started).as_millis() as u64
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Instant::now().duration_since(self.started)
    }

    /// The container's main process exits (or it is killed); the engine reports the death,
    /// unless the fault says the event is lost.
    pub fn kill(&self, id: &str, reason: &str) {
        let report = {
            let mut w = self.state();
            let Some(c) = w.containers.get_mut(id) else {
                return;
            };
            if !c.running {
                return;
            }
            c.running = false;
            c.procs.clear();
            c.died_at = Some(Instant::now());
            let lose = w.faults.lose_events;
            !w.roll(lose)
        };
        if report {
            let ev = BackendEvent::Died {
                id: id.into(),
                reason: reason.into(),
            };
            let watchers = self
                .watchers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut delivered = false;
            for tx in watchers {
                delivered |= tx.try_send(ev.clone()).is_ok();
            }
            if delivered && let Some(c) = self.state().containers.get_mut(id) {
                c.death_reported = true;
            }
        }
    }
}

/// One daemon's connection to a [`FakeEngine`].
pub struct FakeBackend {
    engine: Arc<FakeEngine>,
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

    /// Every call passes here: a dead connection never answers; a down engine refuses; a hang
    /// fault waits out a client timeout.
    async fn gate(&self) -> Result<(), BackendError> {
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
    async fn answer<T>(&self, r: T) -> T {
        if self.dead() {
            std::future::pending::<()>().await;
        }
        r
    }

    fn fail(
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

    fn running(&self, id: &str) -> Result<(), BackendError> {
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

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Kills the processes of an exec's session if the exec is dropped before it finishes.
struct SessionGuard<'a> {
    engine: &'a FakeEngine,
    id: String,
    session: u64,
    armed: bool,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            kill_session(self.engine, &self.id, self.session);
        }
    }
}

fn kill_session(engine: &FakeEngine, id: &str, session: u64) {
    if let Some(c) = engine.state().containers.get_mut(id) {
        c.procs.retain(|_, p| p.session != Some(session));
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
        let (refused, dies, id, image_id) = {
            let mut w = self.state();
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
                let id = format!("fake-{}", w.next_id);
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
                        tmpfs: BTreeMap::new(),
                        procs: BTreeMap::new(),
                        tmpfs_mounts: spec.tmpfs_paths(),
                        created_at: Instant::now(),
                        died_at: None,
                        death_reported: false,
                        next_pid: 3,
                    },
                );
                w.created_total += 1;
                Some(id)
            };
            (refused, dies, id, image_id)
        };
        tokio::time::sleep(self.engine.create_latency).await;
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
        self.gate().await?;
        self.fail(|f| f.fail_exec, "exec", id)?;
        self.running(id)?;
        let session = {
            let mut w = self.state();
            w.next_session += 1;
            w.next_session
        };
        let mut guard = SessionGuard {
            engine: &self.engine,
            id: id.into(),
            session,
            armed: true,
        };
        let args: Vec<&str> = req.cmd.iter().map(String::as_str).collect();
        let tick = self.engine.tick();
        let mut out = ExecOutput::default();
        let mut code = 0;
        match args.as_slice() {
            ["false", ..] => code = 1,
            ["write", path, text] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id) {
                    if c.tmpfs_mounts.iter().any(|m| under(path, m)) {
                        c.tmpfs.insert(path.to_string(), text.as_bytes().to_vec());
                    } else {
                        c.files.insert(path.to_string(), text.as_bytes().to_vec());
                    }
                }
            }
            ["spawn", tag] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id) {
                    let pid = c.next_pid;
                    c.next_pid += 1;
                    c.procs.insert(
                        pid,
                        FakeProc {
                            cmd: tag.to_string(),
                            started: tick.max(1),
                            session: Some(session),
                        },
                    );
                }
            }
            ["sleep", ms] => {
                let ms: u64 = ms.parse().unwrap_or(0);
                {
                    let mut w = self.state();
                    if let Some(c) = w.containers.get_mut(id) {
                        let pid = c.next_pid;
                        c.next_pid += 1;
                        c.procs.insert(
                            pid,
                            FakeProc {
                                cmd: format!("sleep {ms}"),
                                started: tick.max(1),
                                session: Some(session),
                            },
                        );
                    }
                }
                let t = if req.timeout.is_zero() {
                    Duration::from_secs(60)
                } else {
                    req.timeout
                };
                if Duration::from_millis(ms) > t {
                    tokio::time::sleep(t).await;
                    out.timed_out = true;
                } else {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                kill_session(&self.engine, id, session);
            }
            ["clean", dirs @ ..] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id) {
                    c.files.retain(|p, _| !dirs.iter().any(|d| under(p, d)));
                    c.tmpfs.retain(|p, _| !dirs.iter().any(|d| under(p, d)));
                }
            }
            ["check-empty", dirs @ ..] => {
                let w = self.state();
                if let Some(c) = w.containers.get(id)
                    && c.files
                        .keys()
                        .chain(c.tmpfs.keys())
                        .any(|p| dirs.iter().any(|d| under(p, d)))
                {
                    code = 1;
                }
            }
            ["die", ..] => {
                guard.armed = false;
                self.engine.kill(id, "die (exit code 0)");
                return self
                    .answer(Ok(ExecOutput {
                        exit_code: Some(0),
                        ..out
                    }))
                    .await;
            }
            _ => out.stdout = req.cmd.join(" ").into_bytes(),
        }
        guard.armed = false;
        out.exit_code = (!out.timed_out).then_some(code);
        self.answer(Ok(out)).await
    }

    async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), BackendError> {
        warmpool_core::checked_path(path)?;
        self.gate().await?;
        self.running(id)?;
        let data = file.collect().await?;
        let mut w = self.state();
        if let Some(c) = w.containers.get_mut(id) {
            if c.tmpfs_mounts.iter().any(|m| under(path, m)) {
                c.tmpfs.insert(path.into(), data);
            } else {
                c.files.insert(path.into(), data);
            }
        }
        Ok(())
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
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                what: "file",
                subject: path.into(),
            })?;
        Ok(FileBody::from_bytes(data))
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
        let b = {
            let w = self.state();
            let c = w.containers.get(id).ok_or_else(|| BackendError::NotFound {
                what: "container",
                subject: id.into(),
            })?;
            Baseline {
                processes: c
                    .procs
                    .iter()
                    .map(|(pid, p)| format!("{pid} {}", p.cmd))
                    .collect(),
                changes: c
                    .files
                    .keys()
                    .map(|p| FsChange {
                        kind: ChangeKind::Added,
                        path: p.clone(),
                    })
                    .collect(),
                started_before: tick,
            }
        };
        self.answer(Ok(b)).await
    }

    async fn scrub(
        &self,
        id: &str,
        baseline: &Baseline,
        tmpfs: &[String],
    ) -> Result<(), BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_exec, "scrub", id)?;
        self.running(id)?;
        {
            let mut w = self.state();
            if let Some(c) = w.containers.get_mut(id) {
                c.procs.retain(|_, p| p.started <= baseline.started_before);
                c.tmpfs.retain(|p, _| !tmpfs.iter().any(|m| under(p, m)));
            }
        }
        self.answer(Ok(())).await
    }

    async fn residue(
        &self,
        id: &str,
        baseline: &Baseline,
        tmpfs: &[String],
    ) -> Result<Vec<Residue>, BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_inspect, "residue", id)?;
        self.running(id)?;
        let r = {
            let w = self.state();
            let c = w.containers.get(id).expect("checked running");
            let mut r = Vec::new();
            for (pid, p) in &c.procs {
                let line = format!("{pid} {}", p.cmd);
                if !baseline.processes.contains(&line) {
                    r.push(Residue::Process(line));
                }
            }
            let was: BTreeSet<&str> = baseline.changes.iter().map(|c| c.path.as_str()).collect();
            for p in c.files.keys().filter(|p| !was.contains(p.as_str())) {
                r.push(Residue::Path(FsChange {
                    kind: ChangeKind::Added,
                    path: p.clone(),
                }));
            }
            for p in was.iter().filter(|p| !c.files.contains_key(**p)) {
                r.push(Residue::Path(FsChange {
                    kind: ChangeKind::Deleted,
                    path: p.to_string(),
                }));
            }
            for m in tmpfs {
                let entries: Vec<String> =
                    c.tmpfs.keys().filter(|p| under(p, m)).cloned().collect();
                if !entries.is_empty() {
                    r.push(Residue::Tmpfs {
                        mount: m.clone(),
                        entries,
                    });
                }
            }
            r
        };
        self.answer(Ok(r)).await
    }
}
