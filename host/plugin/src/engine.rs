//! One wasmtime [`Engine`] for all plugins, and where their calls run.
//!
//! - **Async, on a runtime of their own.** Every guest call is a future on a small dedicated tokio
//!   runtime (two `wasm` threads), never on the daemon's workers. A call runs under a wall-clock
//!   deadline: a guest computing yields at every epoch tick (10 ms) and a guest parked in a WASI
//!   call (a sleep, a poll) is simply not polled again, so at the deadline the call is abandoned,
//!   whatever the guest was doing, and its instance dropped.
//! - **Memory and imports**: each store is a [`sandbox`](crate::sandbox): a memory cap, and
//!   linkers that deny by default.
//! - **No work while idle**: the epoch ticker runs only while a call is in flight.
//! - **One compile per file**: compiled components are shared by every slot that loads the same
//!   content for the same world, and dropped with the last of them.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result, Store,
};

use crate::compile::{self, Compiled};
use crate::error::PluginError;
use crate::sandbox::{Limits, Linkers, LogGate, State};
use crate::world::World;

/// How often the epoch advances while a call runs; a guest computing yields this often.
pub const TICK: Duration = Duration::from_millis(10);

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
    /// One linker per world: what a component is checked against and instantiated through.
    pub(crate) linkers: Linkers,
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
        let linkers = Linkers::new(&engine)?;

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
            linkers,
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

    /// The compiled component for `bytes` (whose sha256 is `sha`, read from `path`) checked
    /// against `world`: the one a slot still holds for this content and world, else compiled
    /// now (through the `.cwasm` cache in `cache`) and shared. Two slots loading one file wait
    /// for one compile. Blocking and CPU-heavy: run it off the async workers.
    pub(crate) fn compiled(
        &self,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        bytes: &[u8],
        sha: &str,
    ) -> Result<Arc<Compiled>, PluginError> {
        let gate = self.gate(sha, world);
        let _one = gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.shared(sha, world) {
            return Ok(c);
        }
        let component =
            compile::component(&self.engine, &self.compile_config, cache, path, bytes, sha)?;
        let c = Arc::new(Compiled::check(
            &self.linkers,
            &component,
            world,
            path,
            sha,
        )?);
        self.share(&c);
        Ok(c)
    }

    /// A compiled component for this content and world, if a slot still holds one.
    fn shared(&self, sha: &str, world: World) -> Option<Arc<Compiled>> {
        let mut m = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, w| w.strong_count() > 0);
        m.get(&(sha.to_string(), world)).and_then(Weak::upgrade)
    }

    /// The gate a compile of this content and world holds.
    fn gate(&self, sha: &str, world: World) -> Arc<Mutex<()>> {
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

    fn share(&self, c: &Arc<Compiled>) {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((c.sha256.clone(), c.world), Arc::downgrade(c));
    }

    /// A fresh store: empty WASI context, memory cap, a yield at every epoch tick.
    pub(crate) fn store(&self, plugin: Arc<str>, log: Arc<LogGate>, seed: &str) -> Store<State> {
        let mut store = Store::new(&self.engine, State::new(self.limits, plugin, log, seed));
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
