//! What a guest can reach, and how much of it: the limits on every plugin, the state of its
//! store, and the linkers it is instantiated through.
//!
//! - **Memory**: a cap per instance, through a [`ResourceLimiter`](wasmtime::ResourceLimiter)
//!   that also measures it.
//! - **Deny by default**: linkers grant the WASI p2 interfaces Rust's std imports, over an empty
//!   context (no preopens, env, args, stdio or network; frozen clocks; a deterministic random
//!   source seeded per plugin), and `log`, which is rate-limited per call and per second.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Result};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Level, exhaustion, health, sizing};
use crate::stdio::Tail;
use crate::world::World;

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

impl State {
    /// A guest's state under `limits`: an empty WASI context whose random source is seeded
    /// from `seed` (the plugin's sha256), no memory used yet, output kept as a tail.
    pub(crate) fn new(limits: Limits, plugin: Arc<str>, log: Arc<LogGate>, seed: &str) -> State {
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
        State {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: limits.max_memory,
                memory: 0,
            },
            plugin,
            last_error_log: None,
            log,
            limits,
            call_lines: 0,
            captured: None,
            output,
        }
    }
}

/// One linker per world, each granting WASI p2 and `log` and nothing else.
pub struct Linkers {
    sizing: Linker<State>,
    exhaustion: Linker<State>,
    health: Linker<State>,
}

impl Linkers {
    /// The three worlds' linkers on `engine`.
    pub fn new(engine: &Engine) -> Result<Self> {
        let linker = |add: fn(&mut Linker<State>) -> Result<()>| -> Result<Linker<State>> {
            let mut l = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
            add(&mut l)?;
            Ok(l)
        };
        Ok(Self {
            sizing: linker(|l| {
                sizing::SizingPolicy::add_to_linker::<State, HasSelf<State>>(l, |s| s)
            })?,
            exhaustion: linker(|l| {
                exhaustion::ExhaustionStrategy::add_to_linker::<State, HasSelf<State>>(l, |s| s)
            })?,
            health: linker(|l| {
                health::HealthCheck::add_to_linker::<State, HasSelf<State>>(l, |s| s)
            })?,
        })
    }

    /// The linker components of `world` are checked against and instantiated through.
    pub fn get(&self, world: World) -> &Linker<State> {
        match world {
            World::Sizing => &self.sizing,
            World::Exhaustion => &self.exhaustion,
            World::Health => &self.health,
        }
    }
}
