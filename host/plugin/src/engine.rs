//! One wasmtime [`Engine`] for all plugins, and where their calls run.
//!
//! - **Async, on a runtime of their own.** Every guest call is a future on a small dedicated tokio
//!   runtime (two `wasm` threads), never on the daemon's workers. A call runs under a wall-clock
//!   deadline: a guest computing yields at every epoch tick (10 ms) and a guest parked in a WASI
//!   call (a sleep, a poll) is simply not polled again, so at the deadline the call is abandoned,
//!   whatever the guest was doing, and its instance dropped.
//! - **Memory**: a cap per instance, through a [`ResourceLimiter`] that also measures it.
//! - **Deny by default**: linkers grant the WASI p2 interfaces Rust's std imports, over an empty
//!   context (no preopens, env, args, stdio or network; frozen clocks; a deterministic random
//!   source seeded per plugin), and `log`, which is rate-limited per call and per second.
//! - **No work while idle**: the epoch ticker runs only while a call is in flight.
//! - **One compile per file**: compiled components are shared by every slot that loads the same
//!   content for the same world, and dropped with the last of them.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result, Store,
};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Level, exhaustion, health, sizing};
use crate::component::{Compiled, World};
use crate::stdio::Tail;

/// How often the epoch advances while a call runs; a guest computing yields this often.
pub const TICK: Duration = Duration::from_millis(10);

/// Limits on every plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock bound on one call, instantiation and `init` included when they happen in it.
    pub deadline: Duration,
    /// Wall-clock bound on loading a new version: instantiation, `init` and the trial call.
    pub load_deadline: Duration,
    /// Linear memory one instance may grow to.
    pub max_memory: usize,
    /// Consecutive failures after which a plugin is benched until its file changes. A plugin
    /// that fails half of its last 20 calls (and at least this many) is benched too.
    pub bench_after: u32,
    /// `log` lines one call may write; more are dropped and counted.
    pub log_per_call: u32,
    /// `log` lines one plugin may write per second.
    pub log_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            load_deadline: Duration::from_secs(2),
            max_memory: 64 << 20,
            bench_after: 5,
            log_per_call: 16,
            log_per_second: 64,
        }
    }
}

/// The `log` budget of one plugin slot, shared by its instances.
#[derive(Debug, Default)]
pub struct LogGate {
    window: Mutex<(Option<Instant>, u32)>,
    pub(crate) dropped: AtomicU64,
}

impl LogGate {
    /// Whether one more line may be written now.
    fn admit(&self, per_second: u32) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if w.0
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            *w = (Some(now), 0);
        }
        if w.1 >= per_second {
            return false;
        }
        w.1 += 1;
        true
    }
}

/// Lines of guest log kept for `plugin check` to show.
const CAPTURE: usize = 64;

/// A guest's last log lines, shared with the loader, so they survive a call abandoned at its
/// deadline (`plugin check` shows what a guest said before it hung).
pub(crate) type Captured = Arc<Mutex<VecDeque<String>>>;

/// What a plugin's store holds.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The plugin's name, for its log lines.
    pub(crate) plugin: Arc<str>,
    /// The last error-level line the guest logged (its panic message, via the SDK's hook).
    pub(crate) last_error_log: Option<String>,
    log: Arc<LogGate>,
    limits: Limits,
    /// Lines logged in the current call.
    pub(crate) call_lines: u32,
    /// When set, the guest's log lines are kept here too (`plugin check` shows them).
    pub(crate) captured: Option<Captured>,
    /// The tail of what the guest wrote to stdout and stderr (a Python traceback).
    pub(crate) output: Tail,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl sizing::warmpool::plugin::log::Host for State {
    fn log(&mut self, level: Level, message: String) {
        // A guest may not flood the log: lines are cut, and counted past the per-call and
        // per-second budgets instead of written.
        self.call_lines = self.call_lines.saturating_add(1);
        let mut m = message;
        if m.len() > 2048 {
            let mut cut = 2048;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        if level == Level::Error {
            self.last_error_log = Some(m.clone());
        }
        if let Some(c) = &self.captured {
            let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() == CAPTURE {
                c.pop_front();
            }
            c.push_back(format!("{}: {m}", level_name(level)));
        }
        if self.call_lines > self.limits.log_per_call || !self.log.admit(self.limits.log_per_second)
        {
            self.log.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let plugin = &*self.plugin;
        match level {
            Level::Debug => tracing::debug!(plugin, "{m}"),
            Level::Info => tracing::info!(plugin, "{m}"),
            Level::Warn => tracing::warn!(plugin, "{m}"),
            Level::Error => tracing::error!(plugin, "{m}"),
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// The `types` interface has no functions; bindgen still asks for its (empty) host trait.
impl sizing::warmpool::plugin::types::Host for State {}

/// Caps an instance's memory and tables, and measures its memory.
pub struct Limiter {
    max_memory: usize,
    pub(crate) memory: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        let total = self.memory - current.min(self.memory) + desired;
        if total > self.max_memory {
            return Err(wasmtime::Error::msg(format!(
                "memory grow past the cap of {} bytes",
                self.max_memory
            )));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }
    fn tables(&self) -> usize {
        16
    }
    fn memories(&self) -> usize {
        4
    }
}

/// A clock stuck at zero: plugins get time only through the snapshot.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The epoch ticker, which runs only while a call is in flight.
struct Ticker {
    active: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
}

/// Counts a call as in flight (the ticker runs) for as long as it lives.
pub(crate) struct Active<'a>(&'a Ticker);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let mut n = self.0.active.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
    }
}

/// A compiled component's identity: the file's sha256 and the world it was loaded for.
type Key = (String, World);

/// The shared wasmtime engine (pooling allocator, epoch interruption), one linker per world,
/// the plugin runtime, and the cache of compiled components.
pub struct PluginEngine {
    /// The wasmtime engine every plugin store and instance runs on.
    pub engine: Engine,
    /// The same settings without the instance pool: each compile runs on an engine of its
    /// own made from these, because an engine keeps its compiler's working buffers (tens of
    /// MB after a Python plugin) for as long as it lives.
    pub(crate) compile_config: Config,
    /// Limits applied to every plugin run on this engine.
    pub limits: Limits,
    pub(crate) sizing: Linker<State>,
    pub(crate) exhaustion: Linker<State>,
    pub(crate) health: Linker<State>,
    ticker: Arc<Ticker>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// Compiled components by content and world, shared while any slot uses them.
    compiled: Mutex<HashMap<Key, Weak<Compiled>>>,
    /// One compile at a time per content and world: two slots loading one file wait for one
    /// compile instead of doing it twice.
    gates: Mutex<HashMap<Key, Weak<Mutex<()>>>>,
}

impl PluginEngine {
    /// Build the engine and linkers for `limits`, start the epoch-ticker thread and the
    /// plugin runtime (two worker threads).
    pub fn new(limits: Limits) -> Result<Arc<Self>> {
        crate::background::init_compile_threads();
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Each slot reserves no more address space than the cap needs.
        config.memory_reservation((limits.max_memory as u64).max(1 << 20));
        let compile_config = config.clone();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256);
        pool.total_memories(256);
        pool.total_tables(256);
        pool.total_stacks(256);
        pool.total_core_instances(1024);
        pool.max_memory_size(limits.max_memory.max(1 << 20));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let linker = |add: fn(&mut Linker<State>) -> Result<()>| -> Result<Linker<State>> {
            let mut l = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
            add(&mut l)?;
            Ok(l)
        };
        let sizing =
            linker(|l| sizing::SizingPolicy::add_to_linker::<State, HasSelf<State>>(l, |s| s))?;
        let exhaustion = linker(|l| {
            exhaustion::ExhaustionStrategy::add_to_linker::<State, HasSelf<State>>(l, |s| s)
        })?;
        let health =
            linker(|l| health::HealthCheck::add_to_linker::<State, HasSelf<State>>(l, |s| s))?;

        let ticker = Arc::new(Ticker {
            active: Mutex::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let (e, t) = (engine.clone(), ticker.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let mut n = t.active.lock().unwrap_or_else(|p| p.into_inner());
                        while *n == 0 && !t.stop.load(Ordering::Acquire) {
                            n = t.wake.wait(n).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                    if t.stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .map_err(wasmtime::Error::from)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasm")
            .enable_time()
            .build()
            .map_err(wasmtime::Error::from)?;
        let handle = runtime.handle().clone();
        Ok(Arc::new(Self {
            engine,
            compile_config,
            limits,
            sizing,
            exhaustion,
            health,
            ticker,
            runtime: Mutex::new(Some(runtime)),
            handle,
            compiled: Mutex::default(),
            gates: Mutex::default(),
        }))
    }

    /// Count a call as in flight: the epoch ticker runs while any is.
    pub(crate) fn active(&self) -> Active<'_> {
        let mut n = self.ticker.active.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.ticker.wake.notify_one();
        Active(&self.ticker)
    }

    /// Run `fut` on the plugin runtime and wait for it, at most `within` (a backstop: the
    /// future has its own deadline). `None` when it did not answer in time or failed.
    pub async fn run<T: Send + 'static>(
        &self,
        within: Duration,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let task = self.handle.spawn(fut);
        match tokio::time::timeout(within, task).await {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }

    /// Run blocking work (a compile) on the plugin runtime's blocking pool, at low priority.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        self.handle
            .spawn_blocking(|| {
                crate::background::lower_priority();
                f()
            })
            .await
            .ok()
    }

    /// Spawn work on the plugin runtime without waiting for it (a background reload).
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(fut);
    }

    /// A compiled component for this content and world, if a slot still holds one.
    pub(crate) fn shared(&self, sha: &str, world: World) -> Option<Arc<Compiled>> {
        let mut m = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, w| w.strong_count() > 0);
        m.get(&(sha.to_string(), world)).and_then(Weak::upgrade)
    }

    /// The gate a compile of this content and world holds.
    pub(crate) fn gate(&self, sha: &str, world: World) -> Arc<Mutex<()>> {
        let mut g = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|_, w| w.strong_count() > 0);
        let key = (sha.to_string(), world);
        if let Some(m) = g.get(&key).and_then(Weak::upgrade) {
            return m;
        }
        let m = Arc::new(Mutex::new(()));
        g.insert(key, Arc::downgrade(&m));
        m
    }

    pub(crate) fn share(&self, c: &Arc<Compiled>) {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((c.sha256.clone(), c.world), Arc::downgrade(c));
    }

    /// A fresh store: empty WASI context, memory cap, a yield at every epoch tick.
    pub(crate) fn store(&self, plugin: Arc<str>, log: Arc<LogGate>, seed: &str) -> Store<State> {
        let mut bytes: Vec<u8> = seed.bytes().collect();
        if bytes.is_empty() {
            bytes.push(0);
        }
        let mut s16 = [0u8; 16];
        for (i, b) in bytes.iter().take(16).enumerate() {
            s16[i] = *b;
        }
        let output = Tail::default();
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .secure_random(wasmtime_wasi::Deterministic::new(bytes.clone()))
            .insecure_random(wasmtime_wasi::Deterministic::new(bytes))
            .insecure_random_seed(u128::from_le_bytes(s16))
            .max_random_size(4096)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                wasi,
                table: ResourceTable::new(),
                limiter: Limiter {
                    max_memory: self.limits.max_memory,
                    memory: 0,
                },
                plugin,
                last_error_log: None,
                log,
                limits: self.limits,
                call_lines: 0,
                captured: None,
                output,
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Release);
        self.ticker.wake.notify_all();
        // A runtime may not be dropped inside another one: let it wind down in the background.
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }
}
