//! One wasmtime [`Engine`] for all plugins: epoch interruption driven by a 10 ms ticker, the
//! pooling allocator, and one [`Linker`] per world that grants nothing. Guests built by
//! `cargo build --target wasm32-wasip2` import a few WASI interfaces through Rust std; they are
//! linked against an *empty* `WasiCtx`: no preopens, no env, no args, closed stdio, no sockets,
//! and frozen clocks, so the host's `now-ms` is the only time a plugin sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Result;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Level, exhaustion, health, sizing};

/// How often the epoch advances; a deadline of N ticks is about N × this.
pub const TICK: Duration = Duration::from_millis(10);

/// Limits on every plugin call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Epoch ticks a single call may run.
    pub deadline_ticks: u64,
    /// Linear memory one instance may grow to.
    pub max_memory: usize,
    /// Consecutive failures after which a plugin is benched until its file changes.
    pub bench_after: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline_ticks: 5,
            max_memory: 64 << 20,
            bench_after: 5,
        }
    }
}

/// What a plugin's store holds.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The plugin's name, for its log lines.
    pub(crate) plugin: Arc<str>,
    /// The last error-level line the guest logged (its panic message, via the SDK's hook).
    pub(crate) last_error_log: Option<String>,
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
        // A guest may not flood the log: one line, bounded.
        let mut m = message;
        if m.len() > 2048 {
            let mut cut = 2048;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            Level::Debug => tracing::debug!(plugin, "{m}"),
            Level::Info => tracing::info!(plugin, "{m}"),
            Level::Warn => tracing::warn!(plugin, "{m}"),
            Level::Error => {
                tracing::error!(plugin, "{m}");
                self.last_error_log = Some(m);
            }
        }
    }
}

/// The `types` interface has no functions; bindgen still asks for its (empty) host trait.
impl sizing::warmpool::plugin::types::Host for State {}

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

pub struct PluginEngine {
    pub engine: Engine,
    pub limits: Limits,
    pub(crate) sizing: Linker<State>,
    pub(crate) exhaustion: Linker<State>,
    pub(crate) health: Linker<State>,
    stop: Arc<AtomicBool>,
}

impl PluginEngine {
    pub fn new(limits: Limits) -> Result<Arc<Self>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256);
        pool.total_memories(256);
        pool.total_tables(256);
        pool.total_core_instances(1024);
        pool.max_memory_size(limits.max_memory.max(1 << 20));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Each slot reserves no more address space than the cap needs.
        config.memory_reservation((limits.max_memory as u64).max(1 << 20));
        let engine = Engine::new(&config)?;

        let linker = |add: fn(&mut Linker<State>) -> Result<()>| -> Result<Linker<State>> {
            let mut l = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut l)?;
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

        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    e.increment_epoch();
                }
            })
            .map_err(wasmtime::Error::from)?;
        Ok(Arc::new(Self {
            engine,
            limits,
            sizing,
            exhaustion,
            health,
            stop,
        }))
    }

    /// A fresh store: empty WASI context, memory cap, epoch deadline armed per call.
    pub(crate) fn store(&self, plugin: Arc<str>) -> Store<State> {
        let wasi = WasiCtx::builder()
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                wasi,
                table: ResourceTable::new(),
                limits,
                plugin,
                last_error_log: None,
            },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
