//! A loaded plugin and calls into it (compiling is in [`crate::compile`]). Each loaded plugin keeps one store and instance across
//! calls; any error, and any call that overruns its deadline, drops them (a trap poisons an
//! instance for good, and an abandoned call leaves it mid-way), and the next call instantiates
//! afresh from the `InstancePre`.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use warmpool_core::policy_logic as p;
use wasmtime::{Store, Trap};

use crate::bindings::{exhaustion, health, sizing};
use crate::compile::Pre;
pub use crate::compile::{Compiled, sha256_hex};
use crate::convert::{self, Cut};
use crate::engine::{Captured, LogGate, PluginEngine, State};

/// The three plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `sizing-policy`: how many containers to keep ready.
    Sizing,
    /// `exhaustion-strategy`: what to do with an acquire when no container is ready.
    Exhaustion,
    /// `health-check`: which probes to run on a container, and judging their results.
    Health,
}

impl World {
    /// The world's name in the WIT package, e.g. `sizing-policy`.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Sizing => "sizing-policy",
            World::Exhaustion => "exhaustion-strategy",
            World::Health => "health-check",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Sizing => "sizing",
            World::Exhaustion => "exhaustion",
            World::Health => "health",
        })
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sizing" | "sizing-policy" => Ok(World::Sizing),
            "exhaustion" | "exhaustion-strategy" => Ok(World::Exhaustion),
            "health" | "health-check" => Ok(World::Health),
            other => Err(format!(
                "unknown world {other:?} (sizing, exhaustion or health)"
            )),
        }
    }
}

/// Why a plugin could not be loaded or a call failed. Each names the stage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("read {path}: {message}")]
    Read {
        /// The plugin file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The file is not a valid wasm component.
    #[error("compile {path}: not a valid wasm component: {message}")]
    Compile {
        /// The plugin file.
        path: String,
        /// The compiler's error.
        message: String,
    },
    /// The component does not fit the world it was loaded for.
    #[error("link {path}: not a {world} component: {message}")]
    World {
        /// The plugin file.
        path: String,
        /// The expected world's WIT name, e.g. `sizing-policy`.
        world: &'static str,
        /// The linker's error.
        message: String,
    },
    /// `init` returned an error (the guest's message, clipped), or the compile task failed.
    #[error("init: {0}")]
    Init(String),
    /// A call, or a load, overran its wall-clock deadline.
    #[error("call exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// The instance tried to grow its linear memory past the cap, in bytes.
    #[error("call hit the memory cap of {0} bytes")]
    Memory(usize),
    /// The guest trapped: its last error log or output, else wasmtime's error (clipped).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest's answer broke the interface's rules (e.g. a target above `max_ready`).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

enum Bound {
    Sizing(sizing::SizingPolicy),
    Exhaustion(exhaustion::ExhaustionStrategy),
    Health(health::HealthCheck),
}

/// A future borrowing a store and an instance's bindings.
type CallFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// A compiled plugin with its live instance and its settings.
pub struct Loaded {
    /// The world the plugin was loaded for.
    pub world: World,
    /// The plugin file it was loaded from.
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file's contents.
    pub sha256: String,
    /// The compiled component, shared with other slots loading the same content and world.
    pub compiled: Arc<Compiled>,
    name: Arc<str>,
    config: Vec<(String, String)>,
    engine: Arc<PluginEngine>,
    log: Arc<LogGate>,
    live: tokio::sync::Mutex<Option<(Store<State>, Bound)>>,
    /// Linear memory of the live instance, in bytes.
    memory: AtomicUsize,
    /// Keep the guest's log lines (for `plugin check`).
    capture: bool,
    captured: Captured,
}

impl Loaded {
    fn new(
        engine: &Arc<PluginEngine>,
        compiled: Arc<Compiled>,
        path: &Path,
        config: &[(String, String)],
        log: Arc<LogGate>,
        capture: bool,
    ) -> Self {
        let name: Arc<str> = path
            .file_name()
            .map_or_else(|| "plugin".into(), |n| n.to_string_lossy().into());
        Loaded {
            world: compiled.world,
            path: path.to_path_buf(),
            sha256: compiled.sha256.clone(),
            compiled,
            name,
            config: config.to_vec(),
            engine: engine.clone(),
            log,
            live: tokio::sync::Mutex::new(None),
            memory: AtomicUsize::new(0),
            capture,
            captured: Captured::default(),
        }
    }

    /// Read, compile and check `path` against `world` (on the plugin runtime's blocking pool),
    /// then instantiate it and run `init` within the load deadline: a plugin that rejects its
    /// settings, or never finishes `init`, fails here.
    pub async fn load(
        engine: &Arc<PluginEngine>,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        config: &[(String, String)],
    ) -> Result<Loaded, PluginError> {
        let loaded = Self::read_and_compile(engine, cache, world, path, config, false).await?;
        loaded.warm().await?;
        Ok(loaded)
    }

    /// Read `path` and compile it for `world`, without instantiating. `capture`: keep the
    /// guest's log lines for the caller (`plugin check`) instead of only tracing them.
    pub(crate) async fn read_and_compile(
        engine: &Arc<PluginEngine>,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        config: &[(String, String)],
        capture: bool,
    ) -> Result<Loaded, PluginError> {
        let (sha, bytes) = read(engine, path).await?;
        Self::compile(
            engine,
            cache,
            world,
            path,
            bytes,
            sha,
            config,
            Arc::default(),
            capture,
        )
        .await
    }

    /// Compile (on the plugin runtime's blocking pool), without instantiating.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn compile(
        engine: &Arc<PluginEngine>,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        bytes: Vec<u8>,
        sha: String,
        config: &[(String, String)],
        log: Arc<LogGate>,
        capture: bool,
    ) -> Result<Loaded, PluginError> {
        let (e, c, p) = (
            engine.clone(),
            cache.map(Path::to_path_buf),
            path.to_path_buf(),
        );
        let compiled = engine
            .blocking(move || {
                let compiled = Compiled::new(&e, c.as_deref(), world, &p, &bytes, &sha);
                drop(bytes);
                // A compile allocates hundreds of MB that the allocator would otherwise keep.
                crate::background::release_memory();
                compiled
            })
            .await
            .unwrap_or_else(|| Err(PluginError::Init("the compile task failed".into())))?;
        Ok(Loaded::new(engine, compiled, path, config, log, capture))
    }

    /// Instantiate and run `init`, within the load deadline.
    pub(crate) async fn warm(&self) -> Result<(), PluginError> {
        self.call_within(self.engine.limits.load_deadline, |_, _| {
            Box::pin(async { Ok(()) })
        })
        .await
    }

    /// Linear memory of the live instance and the (shared) machine code, in bytes.
    pub fn memory_bytes(&self) -> (usize, usize) {
        (
            self.memory.load(Ordering::Relaxed),
            self.compiled.code_bytes,
        )
    }

    /// The guest's log lines kept so far (only when loaded for `plugin check`).
    pub fn captured_log(&self) -> Vec<String> {
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    async fn instantiate(&self) -> Result<(Store<State>, Bound), PluginError> {
        let mut store = self
            .engine
            .store(self.name.clone(), self.log.clone(), &self.sha256);
        if self.capture {
            store.data_mut().captured = Some(self.captured.clone());
        }
        store.set_epoch_deadline(1);
        let bound = match &self.compiled.pre {
            Pre::Sizing(p) => p.instantiate_async(&mut store).await.map(Bound::Sizing),
            Pre::Exhaustion(p) => p.instantiate_async(&mut store).await.map(Bound::Exhaustion),
            Pre::Health(p) => p.instantiate_async(&mut store).await.map(Bound::Health),
        };
        let bound = match bound {
            Ok(b) => b,
            Err(e) => return Err(self.classify(&mut store, e)),
        };
        let init = match &bound {
            Bound::Sizing(b) => b.call_init(&mut store, &self.config).await,
            Bound::Exhaustion(b) => b.call_init(&mut store, &self.config).await,
            Bound::Health(b) => b.call_init(&mut store, &self.config).await,
        };
        match init {
            Ok(Ok(())) => Ok((store, bound)),
            Ok(Err(msg)) => Err(PluginError::Init(convert::clip(&msg, 1024))),
            Err(e) => Err(self.classify(&mut store, e)),
        }
    }

    fn classify(&self, store: &mut Store<State>, e: wasmtime::Error) -> PluginError {
        let text = format!("{e:#}");
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return PluginError::Deadline(self.engine.limits.deadline);
        }
        if text.contains("memory") && (text.contains("grow") || text.contains("cap")) {
            return PluginError::Memory(self.engine.limits.max_memory);
        }
        // What the guest said before it failed beats wasmtime's backtrace: its panic message
        // (logged by the SDK's hook), else the end of what it wrote to stderr (a Python
        // traceback ends with the exception).
        let said = store.data_mut().last_error_log.take();
        let output = store.data().output.text();
        PluginError::Trap(convert::clip(
            &match said {
                Some(msg) => format!("{msg} ({})", root_cause(&e)),
                None if !output.is_empty() => {
                    format!("{} ({})", last_lines(&output, 6, 768), root_cause(&e))
                }
                None => text,
            },
            1024,
        ))
    }

    /// Run `f` on the live instance (instantiating it first if needed) within the call
    /// deadline. On any error, and at the deadline, the instance is dropped: the next call
    /// starts from a clean one.
    async fn call<R: Send>(
        &self,
        f: impl for<'a> FnOnce(&'a mut Store<State>, &'a Bound) -> CallFuture<'a, R> + Send,
    ) -> Result<R, PluginError> {
        self.call_within(self.engine.limits.deadline, f).await
    }

    async fn call_within<R: Send>(
        &self,
        within: Duration,
        f: impl for<'a> FnOnce(&'a mut Store<State>, &'a Bound) -> CallFuture<'a, R> + Send,
    ) -> Result<R, PluginError> {
        let _active = self.engine.active();
        let mut live = self.live.lock().await;
        let run = async {
            if live.is_none() {
                *live = Some(self.instantiate().await?);
            }
            let (store, bound) = live.as_mut().expect("set above");
            store.data_mut().call_lines = 0;
            store.data().output.clear();
            store.set_epoch_deadline(1);
            let r = f(store, bound).await;
            self.memory
                .store(store.data().limiter.memory, Ordering::Relaxed);
            r.map_err(|e| self.classify(store, e))
        };
        let outcome = tokio::time::timeout(within, run).await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                *live = None;
                self.memory.store(0, Ordering::Relaxed);
                Err(e)
            }
            Err(_) => {
                *live = None;
                self.memory.store(0, Ordering::Relaxed);
                Err(PluginError::Deadline(within))
            }
        }
    }

    /// Call the sizing plugin's `decide` on snapshot `s`; the decision is cut to the host's
    /// bounds by `cut`.
    pub async fn decide(
        &self,
        s: &p::PoolSnapshot,
        cut: &Cut,
    ) -> Result<p::SizingDecision, PluginError> {
        let snap = convert::snapshot(s);
        let d = self
            .call(|store, b| {
                Box::pin(async move {
                    match b {
                        Bound::Sizing(b) => b.call_decide(store, &snap).await,
                        _ => unreachable!("world checked at load"),
                    }
                })
            })
            .await?;
        Ok(convert::decision(d, cut))
    }

    /// Call the exhaustion plugin's `on-exhausted` for request `r` against snapshot `s`; the
    /// action is cut to the host's bounds by `cut`.
    pub async fn on_exhausted(
        &self,
        r: &p::ExhaustionRequest,
        s: &p::PoolSnapshot,
        cut: &Cut,
    ) -> Result<p::ExhaustionAction, PluginError> {
        let (req, snap) = (convert::request(r), convert::snapshot(s));
        let a = self
            .call(|store, b| {
                Box::pin(async move {
                    match b {
                        Bound::Exhaustion(b) => b.call_on_exhausted(store, req, &snap).await,
                        _ => unreachable!("world checked at load"),
                    }
                })
            })
            .await?;
        Ok(convert::action(a, cut))
    }

    /// Call the health plugin's `plan`: the probes to run on `c`, cut to the host's bounds.
    pub async fn plan(
        &self,
        c: &p::ContainerInfo,
        cut: &Cut,
    ) -> Result<Vec<p::Probe>, PluginError> {
        let info = convert::container(c);
        let probes = self
            .call(|store, b| {
                Box::pin(async move {
                    match b {
                        Bound::Health(b) => b.call_plan(store, &info).await,
                        _ => unreachable!("world checked at load"),
                    }
                })
            })
            .await?;
        Ok(convert::probes(probes, cut))
    }

    /// Call the health plugin's `judge` on `c`'s probe `results`; its verdict is cut to the
    /// host's bounds by `cut`.
    pub async fn judge(
        &self,
        c: &p::ContainerInfo,
        results: &[p::ProbeResult],
        cut: &Cut,
    ) -> Result<p::Verdict, PluginError> {
        let info = convert::container(c);
        let rs: Vec<_> = results.iter().map(convert::probe_result).collect();
        let v = self
            .call(|store, b| {
                Box::pin(async move {
                    match b {
                        Bound::Health(b) => b.call_judge(store, &info, &rs).await,
                        _ => unreachable!("world checked at load"),
                    }
                })
            })
            .await?;
        Ok(convert::verdict(v, cut))
    }
}

/// Read a plugin file and hash it, off the runtime's workers (it may be tens of megabytes).
pub(crate) async fn read(
    engine: &PluginEngine,
    path: &Path,
) -> Result<(String, Vec<u8>), PluginError> {
    let p = path.to_path_buf();
    engine
        .blocking(move || std::fs::read(&p).map(|b| (sha256_hex(&b), b)))
        .await
        .unwrap_or_else(|| Err(std::io::Error::other("read task failed")))
        .map_err(|err| PluginError::Read {
            path: path.display().to_string(),
            message: err.to_string(),
        })
}

/// At most the last `lines` lines of `text`, and at most its last `bytes` bytes.
fn last_lines(text: &str, lines: usize, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    match tail.rmatch_indices('\n').nth(lines.saturating_sub(1)) {
        Some((i, _)) => &tail[i + 1..],
        None => tail,
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain()
        .last()
        .map_or_else(|| e.to_string(), |c| c.to_string())
}
