//! A plugin slot: the plugin serving one pool for one kind of decision. It holds the current
//! version behind an [`ArcSwapOption`], so a reload swaps it atomically while calls in flight
//! finish on the old one. Every failed call is answered by the pool's built-in policy and
//! counted; a plugin that keeps failing is benched until its file changes (the rule is in
//! `counters`). The core's policy traits are served through it in [`crate::served`].
//!
//! Loading never blocks anyone: a reload runs on the plugin runtime (the compile on its blocking
//! pool), at most one at a time per slot, with one more queued if the file changes meanwhile;
//! until a first version passes its trial, the slot says `compiling` and the built-in serves.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::future::BoxFuture;
use tracing::{info, warn};
use warmpool_core::PluginStatus;
use warmpool_core::policy_logic::{ContainerInfo, ExhaustionRequest, PoolSnapshot, SizingDecision};

use crate::component::{self, Loaded};
use crate::convert::Cut;
use crate::counters::{Counters, WINDOW};
use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::sandbox::LogGate;
use crate::world::World;

/// Added to a call's deadline for the caller's own bound on waiting for the plugin runtime.
const BACKSTOP: Duration = Duration::from_millis(500);

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
    /// Counts what was cut from this slot's answers.
    pub(crate) cut: Cut,
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
                self.counters().swapped_in();
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

    /// Answer with the current plugin: `ask` it (on the plugin runtime, under its deadline),
    /// recording the outcome. When there is none, it is benched or the call fails, `fallback`
    /// (the built-in) answers.
    pub(crate) async fn serve<'f, R: Send + 'static>(
        self: &Arc<Self>,
        ask: impl FnOnce(Arc<Loaded>, Arc<Self>) -> BoxFuture<'static, Result<R, PluginError>> + Send,
        fallback: impl FnOnce() -> BoxFuture<'f, R> + Send,
    ) -> R {
        match self.call_plugin(ask).await {
            Some(r) => r,
            None => fallback().await,
        }
    }

    /// Run `f` on the current plugin, on the plugin runtime, recording the outcome; `None`
    /// means use the built-in.
    async fn call_plugin<R: Send + 'static>(
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
        match out {
            Ok(r) => {
                c.succeeded();
                Some(r)
            }
            Err(e) => {
                let benched = c.failed(&e, self.engine.limits.bench_after, &loaded.sha256);
                warn!(pool = %self.pool, kind = %self.world, error = %e, "plugin call failed; the built-in answered");
                if let Some(recent) = benched {
                    warn!(pool = %self.pool, kind = %self.world, failures = c.consecutive, recent_failures = recent, window = WINDOW, "plugin benched until its file changes");
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

    pub(crate) fn label(&self, fallback: &str) -> String {
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

/// A sizing answer the host refuses rather than cuts: a target above `max_ready`.
pub(crate) fn check_sizing(
    s: &PoolSnapshot,
    d: SizingDecision,
) -> Result<SizingDecision, PluginError> {
    if d.target > s.max_ready {
        return Err(PluginError::Malformed(format!(
            "target {} > max_ready {}",
            d.target, s.max_ready
        )));
    }
    Ok(d)
}
