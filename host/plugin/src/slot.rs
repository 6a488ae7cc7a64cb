//! A plugin slot: the plugin serving one pool for one kind of decision. It holds the current
//! version behind an [`ArcSwapOption`], so a reload swaps it atomically while calls in flight
//! finish on the old one. Every failed call is answered by the pool's built-in policy and
//! counted; after `bench_after` failures in a row the plugin is benched until its file changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tracing::{info, warn};
use warmpool_core::PluginStatus;
use warmpool_core::policy_logic::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, Probe, ProbeResult,
    SizingDecision, Verdict,
};
use warmpool_core::{ExhaustionStrategy, HealthCheck, SizingPolicy};

use crate::component::{Loaded, PluginError, World, sha256_hex};
use crate::engine::PluginEngine;

/// Probes one plan may ask for; more is a malformed answer.
const MAX_PROBES: usize = 16;

#[derive(Debug, Default)]
struct Counters {
    reloads: u64,
    last_reload_at: Option<SystemTime>,
    last_error: Option<String>,
    calls: u64,
    failures: u64,
    consecutive: u32,
    fallbacks: u64,
    /// Set when benched: the sha256 of the file that failed; cleared when the content changes.
    benched_sha: Option<String>,
}

pub struct PluginSlot {
    pub pool: String,
    pub world: World,
    pub path: PathBuf,
    config: Vec<(String, String)>,
    engine: Arc<PluginEngine>,
    cache: Option<PathBuf>,
    current: ArcSwapOption<Loaded>,
    counters: Mutex<Counters>,
    listener: Arc<std::sync::OnceLock<ReloadListener>>,
}

/// Told of every reload after the first load: the pool, and what happened.
pub type ReloadListener = Arc<dyn Fn(&str, String) + Send + Sync>;

impl PluginSlot {
    pub(crate) fn new(
        pool: &str,
        world: World,
        path: PathBuf,
        config: Vec<(String, String)>,
        engine: Arc<PluginEngine>,
        cache: Option<PathBuf>,
        listener: Arc<std::sync::OnceLock<ReloadListener>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool: pool.into(),
            world,
            path,
            config,
            engine,
            cache,
            current: ArcSwapOption::empty(),
            counters: Mutex::default(),
            listener,
        })
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// Load the file if its content changed: compile, check the world, trial call, then swap.
    /// Any failure keeps the serving version. Returns whether a new version was swapped in.
    /// Blocking (compiles): call it off the async workers.
    pub fn reload(&self) -> Result<bool, PluginError> {
        let bytes = std::fs::read(&self.path).map_err(|e| PluginError::Read {
            path: self.path.display().to_string(),
            message: e.to_string(),
        });
        let sha = bytes.as_deref().map(sha256_hex).ok();
        let same = |cur: &Option<Arc<Loaded>>| {
            cur.as_ref()
                .is_some_and(|c| Some(&c.sha256) == sha.as_ref())
        };
        if same(&self.current.load_full()) && self.counters().benched_sha.is_none() {
            return Ok(false); // a touch, or an editor writing the same bytes: nothing to do
        }
        if sha.is_some() && self.counters().benched_sha == sha {
            return Ok(false); // still the benched content
        }
        let result = bytes.and_then(|_| {
            Loaded::load(
                &self.engine,
                self.cache.as_deref(),
                self.world,
                &self.path,
                &self.config,
            )
        });
        let result = result.and_then(|l| self.trial(&l).map(|()| l));
        let mut c = self.counters();
        match result {
            Ok(loaded) => {
                info!(pool = %self.pool, kind = %self.world, path = %self.path.display(), sha256 = %&loaded.sha256[..12], "plugin loaded");
                self.current.store(Some(Arc::new(loaded)));
                c.reloads += 1;
                c.last_reload_at = Some(SystemTime::now());
                c.last_error = None;
                c.consecutive = 0;
                c.benched_sha = None;
                drop(c);
                self.tell(format!(
                    "{} plugin {} swapped in (sha256 {})",
                    self.world,
                    self.path.display(),
                    self.current.load().as_ref().map_or("", |l| &l.sha256[..12])
                ));
                Ok(true)
            }
            Err(e) => {
                warn!(pool = %self.pool, kind = %self.world, path = %self.path.display(), error = %e, "plugin rejected; the previous version keeps serving");
                c.last_error = Some(e.to_string());
                drop(c);
                self.tell(format!(
                    "{} plugin {} rejected, previous version kept: {e}",
                    self.world,
                    self.path.display()
                ));
                Err(e)
            }
        }
    }

    fn tell(&self, what: String) {
        if let Some(listener) = self.listener.get() {
            listener(&self.pool, what);
        }
    }

    /// One call on sample input before a new version may serve.
    fn trial(&self, l: &Loaded) -> Result<(), PluginError> {
        let s = PoolSnapshot {
            min_ready: 1,
            max_ready: 4,
            max_total: 8,
            idle_timeout_ms: 60_000,
            ..Default::default()
        };
        match self.world {
            World::Sizing => check_sizing(&s, l.decide(&s)?).map(drop),
            World::Exhaustion => l
                .on_exhausted(
                    &ExhaustionRequest {
                        wait_ms: None,
                        wait_timeout_ms: 1_000,
                    },
                    &s,
                )
                .map(drop),
            World::Health => {
                let c = ContainerInfo {
                    id: "trial".into(),
                    pool: self.pool.clone(),
                    age_ms: 0,
                    uses: 0,
                };
                check_plan(l.plan(&c)?).map(drop)
            }
        }
    }

    /// Run `f` on the current plugin, recording the outcome; `None` means use the built-in.
    fn call<R>(&self, f: impl FnOnce(&Loaded) -> Result<R, PluginError>) -> Option<R> {
        let Some(loaded) = self.current.load_full() else {
            self.counters().fallbacks += 1;
            return None;
        };
        if self.counters().benched_sha.is_some() {
            self.counters().fallbacks += 1;
            return None;
        }
        let out = f(&loaded);
        let mut c = self.counters();
        c.calls += 1;
        match out {
            Ok(r) => {
                c.consecutive = 0;
                Some(r)
            }
            Err(e) => {
                c.failures += 1;
                c.consecutive += 1;
                c.fallbacks += 1;
                c.last_error = Some(e.to_string());
                warn!(pool = %self.pool, kind = %self.world, error = %e, "plugin call failed; the built-in answered");
                if c.consecutive >= self.engine.limits.bench_after {
                    warn!(pool = %self.pool, kind = %self.world, failures = c.consecutive, "plugin benched until its file changes");
                    c.benched_sha = Some(loaded.sha256.clone());
                }
                None
            }
        }
    }

    pub fn status(&self) -> PluginStatus {
        let c = self.counters();
        let cur = self.current.load_full();
        PluginStatus {
            pool: self.pool.clone(),
            kind: self.world.to_string(),
            path: self.path.display().to_string(),
            state: match (&cur, &c.benched_sha) {
                (_, Some(_)) => "benched",
                (Some(_), None) => "active",
                (None, None) => "fallback",
            },
            sha256: cur.as_ref().map(|l| l.sha256.clone()),
            reloads: c.reloads,
            last_reload_at: c.last_reload_at.map(warmpool_core::rfc3339),
            last_error: c.last_error.clone(),
            calls: c.calls,
            failures: c.failures,
            consecutive_failures: c.consecutive,
            fallbacks: c.fallbacks,
        }
    }

    fn label(&self, fallback: &str) -> String {
        let file = self
            .path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        match self.status().state {
            "active" => format!("wasm:{file}"),
            state => format!("{fallback} (wasm:{file} {state})"),
        }
    }
}

fn check_sizing(s: &PoolSnapshot, d: SizingDecision) -> Result<SizingDecision, PluginError> {
    if d.target > s.max_ready {
        return Err(PluginError::Malformed(format!(
            "target {} > max_ready {}",
            d.target, s.max_ready
        )));
    }
    Ok(d)
}

fn check_plan(p: Vec<Probe>) -> Result<Vec<Probe>, PluginError> {
    if p.len() > MAX_PROBES {
        return Err(PluginError::Malformed(format!(
            "{} probes planned (at most {MAX_PROBES})",
            p.len()
        )));
    }
    Ok(p)
}

/// Run a blocking plugin call on tokio's blocking pool: a guest never holds up an async worker.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Option<R> + Send + 'static) -> Option<R> {
    tokio::task::spawn_blocking(f).await.ok().flatten()
}

/// A pool's sizing policy served by a plugin, with the built-in as fallback.
pub struct WasmSizing {
    pub slot: Arc<PluginSlot>,
    pub fallback: Arc<dyn SizingPolicy>,
}

impl SizingPolicy for WasmSizing {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        async move {
            let (slot, snap) = (self.slot.clone(), s.clone());
            let answer =
                blocking(move || slot.call(|l| check_sizing(&snap, l.decide(&snap)?))).await;
            match answer {
                Some(d) => d,
                None => self.fallback.decide(s).await,
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}

pub struct WasmExhaustion {
    pub slot: Arc<PluginSlot>,
    pub fallback: Arc<dyn ExhaustionStrategy>,
}

impl ExhaustionStrategy for WasmExhaustion {
    fn on_exhausted<'a>(
        &'a self,
        r: &'a ExhaustionRequest,
        s: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        async move {
            let (slot, req, snap) = (self.slot.clone(), r.clone(), s.clone());
            match blocking(move || slot.call(|l| l.on_exhausted(&req, &snap))).await {
                Some(a) => a,
                None => self.fallback.on_exhausted(r, s).await,
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}

pub struct WasmHealth {
    pub slot: Arc<PluginSlot>,
    pub fallback: Arc<dyn HealthCheck>,
}

impl HealthCheck for WasmHealth {
    fn plan<'a>(&'a self, c: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>> {
        async move {
            let (slot, info) = (self.slot.clone(), c.clone());
            match blocking(move || slot.call(|l| check_plan(l.plan(&info)?))).await {
                Some(p) => p,
                None => self.fallback.plan(c).await,
            }
        }
        .boxed()
    }
    fn judge<'a>(&'a self, c: &'a ContainerInfo, r: &'a [ProbeResult]) -> BoxFuture<'a, Verdict> {
        async move {
            let (slot, info, results) = (self.slot.clone(), c.clone(), r.to_vec());
            match blocking(move || slot.call(|l| l.judge(&info, &results))).await {
                Some(v) => v,
                None => self.fallback.judge(c, r).await,
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}
