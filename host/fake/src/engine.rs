//! The in-memory engine itself: containers, their files and processes, the faults to inject,
//! and what it recorded (creates, removals, deaths reported).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;
use warmpool_core::{BackendEvent, ContainerSpec, Resources, Runtimes};

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
    /// Of the hangs, the share that never end by themselves: only the caller's own deadline
    /// ends them (the fake records when, see [`World::late`]).
    pub hang_endless: f64,
    /// A `sleep` exec outlives its timeout: the engine neither ends it nor answers, so only the
    /// daemon (its deadline, or the lease's stop) ends it and kills its processes.
    pub exec_overrun: f64,
    /// An operation through the container's agent finds the agent dead (killed inside).
    pub agent_dies: f64,
    /// An operation through the agent finds its channel stalled: that operation and every
    /// later one hang, and the keepalive declares the agent dead [`AGENT_SILENT`] later.
    pub agent_stalls: f64,
    /// An operation through the agent receives a frame that does not verify (forged).
    pub agent_forged: f64,
    /// A new container's main process exits right after start (the create sees it stopped),
    /// or within `die_within` after the create answered.
    pub die_at_start: f64,
    /// A started container's main process exits within `die_within` after the create answered.
    pub die_soon: f64,
    /// Upper bound on how long after the create answered a `die_soon` death comes.
    pub die_within: Duration,
    /// A death event is never delivered.
    pub lose_events: f64,
    /// An exec's write or a file upload is still in transit: it lands `slow_for` after the
    /// call, as a busy engine's would.
    pub slow_ops: f64,
    /// How long a `slow_ops` write takes to land.
    pub slow_for: Duration,
    /// An update of a container's cpus and memory fails (the limits stay as they were).
    pub fail_update: f64,
    /// A suspend or a resume fails: before the engine acted, after, or midway with the
    /// container's memory lost (see `hibernate.rs`).
    pub fail_hibernate: f64,
}

/// Create latencies drawn from a log-normal distribution fitted to a median and a 99th
/// percentile (the shape measured create times have: a floor and a long right tail), from the
/// engine's seeded generator. `p99 == p50` gives a fixed latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateSpread {
    /// The median create.
    pub p50: Duration,
    /// The 99th percentile; at least `p50`.
    pub p99: Duration,
}

impl CreateSpread {
    /// One create's latency.
    pub fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        let p50 = self.p50.as_secs_f64().max(1e-6);
        let p99 = self.p99.as_secs_f64().max(p50);
        // ln X ~ N(mu, sigma): the median is e^mu, the 99th percentile e^(mu + 2.3263 sigma).
        let sigma = (p99 / p50).ln() / 2.326_348;
        if self.p50.is_zero() || sigma == 0.0 {
            return self.p50;
        }
        // Box-Muller; 1 - f64() lies in (0, 1], so the logarithm is finite.
        let (u1, u2) = (1.0 - rng.f64(), rng.f64());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        // Bounded at 100 × p99: one draw in a day of creates must not stall a simulation.
        Duration::from_secs_f64((p50 * (sigma * z).exp()).min(p99 * 100.0))
    }
}

/// How long a stalled agent goes before the keepalive declares it dead: the real backend's
/// ping interval and its answer's bound (`host/docker/src/agent/channel.rs`).
pub const AGENT_SILENT: Duration = Duration::from_secs(25);

/// A container's agent, as the daemon's channel to it sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Agent {
    /// Serving.
    #[default]
    Up,
    /// Its channel stalled at this instant: operations hang.
    Stalled(Instant),
    /// Dead, silent or forged: the container is dead to the daemon, though the engine says
    /// it runs.
    Dead(String),
}

/// A call that hangs with no end of its own, until its caller gives up.
#[derive(Debug, Clone)]
pub struct Hang {
    /// What was called.
    pub call: &'static str,
    /// When it started hanging.
    pub since: Instant,
    /// The daemon's own deadline on that call: it must end the hang by then.
    pub bound: Duration,
    /// The connection (daemon incarnation) that made the call.
    pub conn: u64,
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
    /// Files in the container's tmpfs mounts (`/dev`, `/dev/shm`, …), invisible to the layer
    /// diff.
    pub tmpfs: BTreeMap<String, Vec<u8>>,
    /// Files bind-mounted by the engine (`/etc/hosts`): invisible to the layer diff, read
    /// through the engine.
    pub binds: BTreeMap<String, Vec<u8>>,
    /// Tmpfs mounts a client made unreadable in a way the scrub cannot undo (`hide`).
    pub hidden: BTreeSet<String>,
    /// The lease's environment and secrets, as its set-up gave them (the scrub forgets them).
    pub lease_env: BTreeMap<String, String>,
    /// Its processes by PID: 1 is `init`, 2 the main command, later ones from execs.
    pub procs: BTreeMap<u64, FakeProc>,
    /// Paths of its tmpfs mounts: the spec's, and `/dev` (which holds `/dev/null` when fresh).
    pub tmpfs_mounts: Vec<String>,
    /// When the create made it (tokio's clock).
    pub created_at: Instant,
    /// When it stopped (its start failed, or it was killed), by tokio's clock.
    pub died_at: Option<Instant>,
    /// Whether its death was reported to watchers (read by the simulation's lease checks).
    pub death_reported: bool,
    /// The daemon instance (`host_id`) whose labels it carries: only that one lists it.
    pub host: String,
    /// A checkpoint of it is on disk (a suspend stopped it; a resume restores it).
    pub checkpoint: bool,
    /// Its agent.
    pub agent: Agent,
    /// When its agent's death was last reported, and to which connection.
    pub agent_reported: Option<(u64, Instant)>,
    /// Its CPU and memory limits now: its spec's, until an update changes them.
    pub limits: Resources,
    /// Its spec's limits, which a reuse must put back.
    pub spec_limits: Resources,
    /// Its limits were ever other than its spec's.
    pub resized: bool,
    pub(crate) next_pid: u64,
}

impl FakeContainer {
    /// A container as a create records it (created, not yet running), with the labels of
    /// daemon instance `host`.
    pub fn new(
        id: &str,
        name: &str,
        pool: &str,
        spec: &ContainerSpec,
        image_id: &str,
        created: SystemTime,
        host: &str,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            used: false,
            pool: pool.into(),
            fingerprint: spec.fingerprint(image_id),
            image: spec.image.clone(),
            image_id: image_id.into(),
            running: false,
            created,
            files: BTreeMap::new(),
            tmpfs: BTreeMap::from([("/dev/null".to_string(), Vec::new())]),
            binds: BTreeMap::from([("/etc/hosts".to_string(), b"127.0.0.1 localhost\n".to_vec())]),
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
            host: host.into(),
            checkpoint: false,
            agent: Agent::Up,
            agent_reported: None,
            limits: Resources::of(spec),
            spec_limits: Resources::of(spec),
            resized: false,
            next_pid: 3,
        }
    }
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
    /// The container that died soon after its create answered (`None` for a failed create).
    pub died: Option<String>,
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
    /// Draw each create's latency from this spread instead of the engine's fixed
    /// `create_latency` (the policy lab's simulations set it).
    pub create_spread: Option<CreateSpread>,
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
    /// Death events lost so far (the `lose_events` fault).
    pub lost_events: u64,
    /// Calls hanging now with no end of their own, by a serial number.
    pub hangs: BTreeMap<u64, Hang>,
    /// Endless hangs their caller ended so far.
    pub hangs_ended: u64,
    /// `sleep` execs that outlive their timeout, running now: (container, session) → the
    /// daemon's deadline on the call and the connection.
    pub overruns: BTreeMap<(String, u64), (Instant, u64)>,
    /// Overrunning execs the daemon ended so far.
    pub overruns_ended: u64,
    /// Agent faults that hit a container so far: deaths, stalls, forged frames.
    pub agent_faults: [u64; 3],
    /// Broken promises the engine saw itself (a hang or an exec the daemon ended past its
    /// deadline); the simulation fails on the first.
    pub late: Vec<String>,
    /// Trial creates (arrived under an open breaker) in flight, from their arrival to their
    /// answer (or the caller dropping them): (pool and connection, name, arrival).
    pub trials_in_flight: Vec<((String, u64), String, Instant)>,
    /// Creates that arrived while their pool's breaker here was open (trials).
    pub trials: u64,
    /// Updates of a container's limits that the engine applied, failed (the `fail_update`
    /// fault), and that put a resized container back to its spec's limits.
    pub updates: [u64; 3],
    /// The OCI runtimes the engine has registered (`runc` alone by default); a create whose
    /// spec names another fails, and is recorded in [`World::late`].
    pub runtimes: Runtimes,
    /// Creates of a pool naming a runtime that reached an engine having it.
    pub runtime_creates: u64,
    /// The connection of the daemon serving now: the last one attached.
    pub current_conn: u64,
    /// While set, the engine cannot checkpoint (no experimental mode, a runtime that cannot),
    /// and says this.
    pub no_checkpoint: Option<String>,
    /// Checkpoints taken so far.
    pub checkpoints: u64,
    /// Restores from a checkpoint done so far.
    pub restores: u64,
    /// Hibernation faults (`fail_hibernate`) injected so far.
    pub hibernate_faults: u64,
    pub(crate) next_hang: u64,
    pub(crate) rng: fastrand::Rng,
    pub(crate) next_id: u64,
    pub(crate) next_session: u64,
    /// What container IDs start with.
    pub(crate) id_prefix: String,
}

impl World {
    pub(crate) fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    /// IDs of the containers on the engine, in any state.
    pub fn ids(&self) -> BTreeSet<String> {
        self.containers.keys().cloned().collect()
    }

    pub(crate) fn find(&self, id_or_name: &str) -> Option<String> {
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
    pub(crate) watchers: Mutex<Vec<mpsc::Sender<BackendEvent>>>,
    /// Asked at each create's arrival: whether the daemon's breaker for that pool on this
    /// engine is open (the simulation reads its daemon's stats). An open breaker allows one
    /// trial create at a time: a second one arriving while another is in flight is recorded
    /// in [`World::late`].
    pub breaker_open: BreakerProbe,
}

/// See [`FakeEngine::breaker_open`].
pub type BreakerProbe = Mutex<Option<Box<dyn Fn(&str) -> bool + Send + Sync>>>;

impl FakeEngine {
    /// An empty, healthy engine whose creates take `create_latency`; `seed` drives its faults.
    pub fn new(create_latency: Duration, seed: u64) -> Arc<Self> {
        Self::with_prefix(create_latency, seed, "fake")
    }

    /// [`FakeEngine::new`] whose container IDs start with `prefix`, so IDs stay unique across
    /// several engines (as real engine IDs are).
    pub fn with_prefix(create_latency: Duration, seed: u64, prefix: &str) -> Arc<Self> {
        let e = Self::build(create_latency, seed);
        e.state().id_prefix = prefix.into();
        e
    }

    fn build(create_latency: Duration, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            create_latency,
            started: Instant::now(),
            world: Mutex::new(World {
                containers: BTreeMap::new(),
                faults: Faults::default(),
                down: false,
                fail_next: 0,
                fail_always: None,
                create_spread: None,
                sick: BTreeSet::new(),
                image_id: "sha256:one".into(),
                created_total: 0,
                destroyed_total: 0,
                creating_now: 0,
                creating_peak: 0,
                create_log: Vec::new(),
                failures: Vec::new(),
                lost_events: 0,
                hangs: BTreeMap::new(),
                hangs_ended: 0,
                overruns: BTreeMap::new(),
                overruns_ended: 0,
                agent_faults: [0; 3],
                late: Vec::new(),
                trials_in_flight: Vec::new(),
                trials: 0,
                updates: [0; 3],
                runtimes: Runtimes {
                    names: vec!["runc".into()],
                    default: Some("runc".into()),
                },
                runtime_creates: 0,
                current_conn: 0,
                no_checkpoint: None,
                checkpoints: 0,
                restores: 0,
                hibernate_faults: 0,
                next_hang: 0,
                rng: fastrand::Rng::with_seed(seed),
                next_id: 0,
                next_session: 0,
                id_prefix: "fake".into(),
            }),
            watchers: Mutex::default(),
            breaker_open: Mutex::default(),
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

    pub(crate) fn wall(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Instant::now().duration_since(self.started)
    }

    /// Put a running container of another daemon instance (`host`) on the engine, as that
    /// daemon would have made it for `pool`; returns its ID.
    pub fn plant(&self, host: &str, name: &str, pool: &str, spec: &ContainerSpec) -> String {
        let wall = self.wall();
        let tick = self.tick();
        let mut w = self.state();
        w.next_id += 1;
        let id = format!("{}-{}", w.id_prefix, w.next_id);
        let image_id = w.image_id.clone();
        let mut c = FakeContainer::new(&id, name, pool, spec, &image_id, wall, host);
        c.running = true;
        for (pid, cmd) in [(1, "init".to_string()), (2, spec.cmd.join(" "))] {
            c.procs.insert(
                pid,
                FakeProc {
                    cmd,
                    started: tick,
                    session: None,
                },
            );
        }
        w.containers.insert(id.clone(), c);
        id
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
            let lost = w.roll(lose);
            w.lost_events += u64::from(lost);
            !lost
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
