//! A plugin slot: the plugin serving one pool for one kind of decision. It holds the current
//! version behind an [`ArcSwapOption`], so a reload swaps it atomically while calls in flight
//! finish on the old one. Every failed call is answered by the pool's built-in policy and
//! counted; after `bench_after` failures in a row the plugin is benched until its file changes.
//!
//! Loading never blocks anyone: a reload runs on the plugin runtime (the compile on its blocking
//! pool), at most one at a time per slot, with one more queued if the file changes meanwhile;
//! until a first version passes its trial, the slot says `compiling` and the built-in serves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

use crate::component::{self, Loaded};
use crate::convert::Cut;
use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::sandbox::LogGate;
use crate::world::World;

/// Added to a call's deadline for the caller's own bound on waiting for the plugin runtime.
const BACKSTOP: Duration = Duration::from_millis(500);

/// Calls a plugin's failure share is judged over. A plugin that fails half of them is benched
/// as one failing `bench_after` times in a row is: a guest that goes bad in service answers
/// each fresh instance's first call, so its failures never run in a row, yet it costs a
/// deadline every other decision (the policy lab's simulation of such a guest found it).
const WINDOW: u32 = 20;

#[derive(Debug, Default)]
struct Counters {
    reloads: u64,
    last_reload_at: Option<SystemTime>,
    last_error: Option<String>,
    calls: u64,
    failures: u64,
    consecutive: u32,
    /// The outcomes of the last [`WINDOW`] calls, newest in bit 0 (1: failed).
    recent: u64,
    fallbacks: u64,
    /// Set when benched: the sha256 of the file that failed; cleared when the content changes.
    benched_sha: Option<String>,
}

/// The plugin serving one pool for one world, reloaded when its file changes.
pub struct PluginSlot {
    /// The pool this slot serves.
    pub pool: String,
    /// The kind of decision the plugin makes.
    pub world: World,
    /// The plugin file, read again on every reload.
    pub path: PathBuf,
    config: Vec<(String, String)>,
    engine: Arc<PluginEngine>,
    cache: Option<PathBuf>,
    current: ArcSwapOption<Loaded>,
    counters: Mutex<Counters>,
    log: Arc<LogGate>,
    cut: Cut,
    /// A reload is queued and has not started yet.
    queued: AtomicBool,
    /// Held for the whole of a reload.
    reloading: tokio::sync::Mutex<()>,
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
            log: Arc::default(),
            cut: Cut::default(),
            queued: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(()),
            listener,
        })
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version serving now, if one has loaded.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// Reload in the background, on the plugin runtime. A request while a reload runs queues
    /// one more (a file that changed during a compile is read again after it).
    pub fn request_reload(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        self.engine.spawn(async move {
            let _ = this.reload().await;
        });
    }

    /// Reload now and wait: read the file, and if its content changed compile it (off the
    /// async workers), check its world, `init` it and give it a trial call, then swap it in.
    /// Any failure keeps the serving version. Returns whether a new version was swapped in.
    pub async fn reload(&self) -> Result<bool, PluginError> {
        let _one = self.reloading.lock().await;
        self.queued.store(false, Ordering::Release);
        let (sha, bytes) = match component::read(&self.engine, &self.path).await {
            Ok(r) => r,
            Err(e) => return Err(self.rejected(e)),
        };
        let benched = self.counters().benched_sha.clone();
        let same = self.current().is_some_and(|c| c.sha256 == sha);
        if (same && benched.is_none()) || benched.as_deref() == Some(sha.as_str()) {
            return Ok(false); // a touch, an editor writing the same bytes, or still benched
        }
        let loaded = match Loaded::compile(
            &self.engine,
            self.cache.as_deref(),
            self.world,
            &self.path,
            bytes,
            sha,
            &self.config,
            self.log.clone(),
            false,
        )
        .await
        {
            Ok(l) => l.warm().await.map(|()| l),
            Err(e) => Err(e),
        };
        let result = match loaded {
            Ok(l) => self.trial(&l).await.map(|()| l),
            Err(e) => Err(e),
        };
        match result {
            Ok(loaded) => {
                let short = loaded.sha256[..12].to_string();
                info!(pool = %self.pool, kind = %self.world, path = %self.path.display(), sha256 = %short, "plugin loaded");
                let previous = self.current.swap(Some(Arc::new(loaded)));
                {
                    let mut c = self.counters();
                    c.reloads += 1;
                    c.last_reload_at = Some(SystemTime::now());
                    c.last_error = None;
                    c.consecutive = 0;
                    c.recent = 0;
                    c.benched_sha = None;
                }
                self.tell(format!(
                    "{} plugin {} swapped in (sha256 {short})",
                    self.world,
                    self.path.display()
                ));
                if previous.is_some() {
                    // The replaced version's memory goes back to the system (once calls in
                    // flight let go of it).
                    drop(previous);
                    self.engine
                        .blocking(crate::background::release_memory)
                        .await;
                }
                Ok(true)
            }
            Err(e) => Err(self.rejected(e)),
        }
    }

    fn rejected(&self, e: PluginError) -> PluginError {
        warn!(pool = %self.pool, kind = %self.world, path = %self.path.display(), error = %e, "plugin rejected; the previous version keeps serving");
        self.counters().last_error = Some(e.to_string());
        self.tell(format!(
            "{} plugin {} rejected, previous version kept: {e}",
            self.world,
            self.path.display()
        ));
        e
    }

    /// Wait until no reload is queued or running.
    pub async fn settled(&self) {
        loop {
            drop(self.reloading.lock().await);
            if !self.queued.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn tell(&self, what: String) {
        if let Some(listener) = self.listener.get() {
            listener(&self.pool, what);
        }
    }

    /// One call on sample input before a new version may serve.
    async fn trial(&self, l: &Loaded) -> Result<(), PluginError> {
        let s = PoolSnapshot {
            min_ready: 1,
            max_ready: 4,
            max_total: 8,
            idle_timeout_ms: 60_000,
            ..Default::default()
        };
        match self.world {
            World::Sizing => check_sizing(&s, l.decide(&s, &self.cut).await?).map(drop),
            World::Exhaustion => l
                .on_exhausted(
                    &ExhaustionRequest {
                        wait_ms: None,
                        wait_timeout_ms: 1_000,
                    },
                    &s,
                    &self.cut,
                )
                .await
                .map(drop),
            World::Health => {
                let c = ContainerInfo {
                    id: "trial".into(),
                    pool: self.pool.clone(),
                    age_ms: 0,
                    uses: 0,
                };
                l.plan(&c, &self.cut).await.map(drop)
            }
        }
    }

    /// Run `f` on the current plugin, on the plugin runtime, recording the outcome; `None`
    /// means use the built-in.
    async fn serve<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(Arc<Loaded>, Arc<Self>) -> BoxFuture<'static, Result<R, PluginError>>,
    ) -> Option<R> {
        let Some(loaded) = self.current.load_full() else {
            self.counters().fallbacks += 1;
            return None;
        };
        if self.counters().benched_sha.is_some() {
            self.counters().fallbacks += 1;
            return None;
        }
        let deadline = self.engine.limits.deadline;
        let out = self
            .engine
            .run(deadline + BACKSTOP, f(loaded.clone(), self.clone()))
            .await
            .unwrap_or(Err(PluginError::Deadline(deadline)));
        // A call begun on a version that a reload has since replaced says nothing of the new
        // one: its outcome must not count toward benching the new version.
        let current = self
            .current
            .load()
            .as_ref()
            .is_some_and(|cur| Arc::ptr_eq(cur, &loaded));
        if !current {
            return out.ok();
        }
        let mut c = self.counters();
        c.calls += 1;
        c.recent = (c.recent << 1) | u64::from(out.is_err());
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
                let bench_after = self.engine.limits.bench_after;
                let window = c.recent & ((1 << WINDOW) - 1);
                // At least `bench_after` in a row, or half the window and never fewer than
                // `bench_after`: a flapping plugin is as broken as a dead one.
                let flapping = window.count_ones() >= (WINDOW / 2).max(bench_after);
                if c.consecutive >= bench_after || flapping {
                    warn!(pool = %self.pool, kind = %self.world, failures = c.consecutive, recent_failures = window.count_ones(), window = WINDOW, "plugin benched until its file changes");
                    c.benched_sha = Some(loaded.sha256.clone());
                }
                None
            }
        }
    }

    /// A snapshot of the slot for `/v1/plugins`: state (`active`, `compiling`, `benched` or
    /// `fallback`), counters, and memory and code size in bytes.
    pub fn status(&self) -> PluginStatus {
        let c = self.counters();
        let cur = self.current.load_full();
        let loading = self.queued.load(Ordering::Acquire) || self.reloading.try_lock().is_err();
        let (memory, code) = cur.as_ref().map_or((0, 0), |l| l.memory_bytes());
        PluginStatus {
            pool: self.pool.clone(),
            kind: self.world.to_string(),
            path: self.path.display().to_string(),
            state: match (&cur, &c.benched_sha, loading) {
                (_, Some(_), _) => "benched",
                (Some(_), None, _) => "active",
                (None, None, true) => "compiling",
                (None, None, false) => "fallback",
            },
            loading,
            sha256: cur.as_ref().map(|l| l.sha256.clone()),
            reloads: c.reloads,
            last_reload_at: c.last_reload_at.map(warmpool_core::rfc3339),
            last_error: c.last_error.clone(),
            calls: c.calls,
            failures: c.failures,
            consecutive_failures: c.consecutive,
            fallbacks: c.fallbacks,
            truncated: self.cut.count(),
            log_dropped: self.log.dropped.load(Ordering::Relaxed),
            memory_bytes: memory as u64,
            code_bytes: code as u64,
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

/// A pool's sizing policy served by a plugin, with the built-in as fallback.
pub struct WasmSizing {
    /// The slot holding the pool's sizing plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in policy, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn SizingPolicy>,
}

impl SizingPolicy for WasmSizing {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        async move {
            let snap = s.clone();
            let answer = self
                .slot
                .serve(move |l, slot| {
                    async move { check_sizing(&snap, l.decide(&snap, &slot.cut).await?) }.boxed()
                })
                .await;
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

/// A pool's exhaustion strategy served by a plugin, with the built-in as fallback.
pub struct WasmExhaustion {
    /// The slot holding the pool's exhaustion plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in strategy, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn ExhaustionStrategy>,
}

impl ExhaustionStrategy for WasmExhaustion {
    fn on_exhausted<'a>(
        &'a self,
        r: &'a ExhaustionRequest,
        s: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        async move {
            let (req, snap) = (r.clone(), s.clone());
            let answer = self
                .slot
                .serve(move |l, slot| {
                    async move { l.on_exhausted(&req, &snap, &slot.cut).await }.boxed()
                })
                .await;
            match answer {
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

/// A pool's health check served by a plugin, with the built-in as fallback.
pub struct WasmHealth {
    /// The slot holding the pool's health plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in check, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn HealthCheck>,
}

impl HealthCheck for WasmHealth {
    fn plan<'a>(&'a self, c: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>> {
        async move {
            let info = c.clone();
            let answer = self
                .slot
                .serve(move |l, slot| async move { l.plan(&info, &slot.cut).await }.boxed())
                .await;
            match answer {
                Some(p) => p,
                None => self.fallback.plan(c).await,
            }
        }
        .boxed()
    }
    fn judge<'a>(&'a self, c: &'a ContainerInfo, r: &'a [ProbeResult]) -> BoxFuture<'a, Verdict> {
        async move {
            let (info, results) = (c.clone(), r.to_vec());
            let answer = self
                .slot
                .serve(move |l, slot| {
                    async move { l.judge(&info, &results, &slot.cut).await }.boxed()
                })
                .await;
            match answer {
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
