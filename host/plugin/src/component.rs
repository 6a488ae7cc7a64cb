//! A loaded plugin and calls into it (compiling is in [`crate::compile`]). Each loaded plugin
//! keeps one store and instance across calls; any error, and any call that overruns its
//! deadline, drops them (a trap poisons an instance for good, and an abandoned call leaves it
//! mid-way), and the next call instantiates afresh from the `InstancePre`.
//!
//! Every export, and the load's `init`, is called through one piece (`Loaded::call_within`):
//! under a wall-clock deadline, with the epoch ticker running, the instance's memory measured
//! and any failure mapped to a [`PluginError`] (by `fault`). The typed wrappers only pick their
//! world's bindings, convert inputs in and cut answers on the way out.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use warmpool_core::policy_logic as p;
use wasmtime::Store;

use crate::bindings::{exhaustion, health, sizing};
use crate::compile::{Compiled, sha256_hex};
use crate::convert::{self, Cut};
use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::fault;
use crate::instance::{Bound, Export};
use crate::sandbox::{Captured, LogGate, State};
use crate::world::World;

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
                let compiled = e.compiled(c.as_deref(), world, &p, &bytes, &sha);
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
        let bound = match self.compiled.pre.instantiate(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.classify(&mut store, e)),
        };
        match bound.init(&mut store, &self.config).await {
            Ok(Ok(())) => Ok((store, bound)),
            Ok(Err(msg)) => Err(PluginError::Init(convert::clip(&msg, 1024))),
            Err(e) => Err(self.classify(&mut store, e)),
        }
    }

    fn classify(&self, store: &mut Store<State>, e: wasmtime::Error) -> PluginError {
        fault::classify(&self.engine.limits, store, e)
    }

    /// Run `f`, a call to one of world `G`'s exports, on the live instance within the call
    /// deadline (see `call_within`).
    async fn call<G: Export, R: Send>(
        &self,
        f: impl for<'a> FnOnce(&'a mut Store<State>, &'a G) -> CallFuture<'a, R> + Send,
    ) -> Result<R, PluginError> {
        self.call_within(self.engine.limits.deadline, |store, bound| {
            f(store, G::of(bound))
        })
        .await
    }

    /// Run `f` on the live instance (instantiating it first if needed) within `within`, with
    /// the epoch ticker running so a computing guest yields. The instance's memory is measured
    /// after the call, and any failure mapped to a [`PluginError`]. On any error, and at the
    /// deadline, the instance is dropped: the next call starts from a clean one.
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
        let failed = match tokio::time::timeout(within, run).await {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) => e,
            Err(_) => PluginError::Deadline(within),
        };
        *live = None;
        self.memory.store(0, Ordering::Relaxed);
        Err(failed)
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
            .call(|store, b: &sizing::SizingPolicy| {
                Box::pin(async move { b.call_decide(store, &snap).await })
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
            .call(|store, b: &exhaustion::ExhaustionStrategy| {
                Box::pin(async move { b.call_on_exhausted(store, req, &snap).await })
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
            .call(|store, b: &health::HealthCheck| {
                Box::pin(async move { b.call_plan(store, &info).await })
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
            .call(|store, b: &health::HealthCheck| {
                Box::pin(async move { b.call_judge(store, &info, &rs).await })
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
