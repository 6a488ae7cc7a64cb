//! # warmpool-plugin-host: sizing, exhaustion and health as sandboxed wasm components
//!
//! Operators change how a pool scales, what it does when dry and how it judges health by
//! dropping a new `.wasm` file in place: no rebuild, no restart. A plugin implements one world of
//! `wit/warmpool-plugin@0.1.0` and is a pure function of what the host passes in (and of its own
//! earlier calls, while its instance lives).
//!
//! A broken or hostile plugin never takes the daemon down, on any path (startup, config reload,
//! hot reload, `plugin check`): every call, instantiation and `init` included, runs on a runtime
//! of its own under a wall-clock deadline and a memory cap; loading never blocks a caller (the
//! built-in serves until a first version passes its trial); every string, list and number a
//! guest returns is bounded; its log is rate-limited.
//!
//! Where things live:
//! - [`world`]: the three worlds and their names; [`error`]: [`PluginError`], what every stage
//!   reports.
//! - [`bindings`]: every generated binding, one module per world.
//! - [`sandbox`]: the [`Limits`], a store's state (memory cap and measure, an empty WASI
//!   context, the rate-limited `log` import) and the linkers that deny by default.
//! - `instance`: the one place that dispatches over the worlds' generated types: the world
//!   check, instantiation, `init`, and which bindings an export is called on.
//! - [`engine`]: one wasmtime engine (async, epoch yields, pooling allocator), the plugin
//!   runtime, and the compiles shared between slots.
//! - `background`: compile threads at a lower CPU priority than serving.
//! - [`compile`]: compile on a throw-away engine, through a `.cwasm` cache served as mapped
//!   pages, and check against the world.
//! - [`component`]: a loaded plugin's instances, and calls under their deadline;
//!   `fault`: what a failed call is reported as.
//! - [`convert`]: WIT types ↔ policy types, with every answer cut to bounds.
//! - [`slot`]: the plugin serving one pool for one decision, swapped atomically, with the
//!   built-in policy as fallback; `counters`: its counters and the rule that benches it
//!   after repeated failures; [`served`]: the core's policy traits, served by a slot.
//! - [`stdio`]: a guest's stdout and stderr, kept as a short tail for error reports.
//! - [`watch`]: the file watcher that reports changed plugin files.
//! - [`check`]: `warmpool plugin check`.

mod background;
pub mod bindings;
pub mod check;
pub mod compile;
pub mod component;
pub mod convert;
mod counters;
pub mod engine;
pub mod error;
mod fault;
mod instance;
pub mod sandbox;
pub mod served;
pub mod slot;
pub mod stdio;
pub mod watch;
pub mod world;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use warmpool_core::PluginStatus;

pub use engine::PluginEngine;
pub use error::PluginError;
pub use sandbox::Limits;
pub use served::{WasmExhaustion, WasmHealth, WasmSizing};
pub use slot::PluginSlot;
pub use watch::PluginWatcher;
pub use world::World;

/// All plugin slots of a daemon, on one engine.
pub struct PluginHost {
    /// The one wasmtime engine, plugin runtime and compile cache every slot shares.
    pub engine: Arc<PluginEngine>,
    cache: Option<PathBuf>,
    slots: Mutex<Vec<Arc<PluginSlot>>>,
    listener: Arc<std::sync::OnceLock<slot::ReloadListener>>,
}

impl PluginHost {
    /// `cache_dir`: where compiled components are kept. Created with mode 0700; a directory that
    /// others could write is refused (the cache is deserialised without re-validation).
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Arc<Self>> {
        let engine =
            PluginEngine::new(limits).map_err(|e| anyhow::anyhow!("wasm engine: {e:#}"))?;
        let cache = match cache_dir {
            Some(dir) => match private_dir(dir) {
                Ok(()) => Some(dir.to_path_buf()),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "plugin compile cache disabled");
                    None
                }
            },
            None => None,
        };
        Ok(Arc::new(Self {
            engine,
            cache,
            slots: Mutex::default(),
            listener: Arc::default(),
        }))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PluginSlot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create the slot for `pool`'s `world` plugin and start loading it in the background. Until
    /// a version passes its trial the slot says `compiling` and the built-in serves; a file that
    /// fails to load leaves it on the built-in and says why (a later change may fix it).
    pub fn slot(
        &self,
        pool: &str,
        world: World,
        path: &Path,
        config: Vec<(String, String)>,
    ) -> Arc<PluginSlot> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let slot = PluginSlot::new(
            pool,
            world,
            path,
            config,
            self.engine.clone(),
            self.cache.clone(),
            self.listener.clone(),
        );
        slot.request_reload();
        self.slots().push(slot.clone());
        slot
    }

    /// Be told of every reload from now on (the daemon turns them into `reload` events).
    pub fn on_reload(&self, listener: slot::ReloadListener) {
        let _ = self.listener.set(listener);
    }

    /// Every slot, in the order made.
    pub fn slots_list(&self) -> Vec<Arc<PluginSlot>> {
        self.slots().clone()
    }

    /// Every slot's status, for `/v1/plugins` and `/metrics`.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.slots().iter().map(|s| s.status()).collect()
    }

    /// Forget `pool`'s slots: a config reload removed the pool or rebuilds its plugins.
    pub fn drop_pool(&self, pool: &str) {
        self.slots().retain(|s| s.pool != pool);
    }

    /// The directories holding plugin files, for the watcher.
    pub fn dirs(&self) -> BTreeSet<PathBuf> {
        self.slots()
            .iter()
            .filter_map(|s| s.path.parent().map(PathBuf::from))
            .collect()
    }

    /// These paths changed: reload (in the background) every slot whose file is among them.
    /// Returns how many slots were asked.
    pub fn files_changed(&self, paths: &BTreeSet<PathBuf>) -> usize {
        let hit: Vec<Arc<PluginSlot>> = self
            .slots()
            .iter()
            .filter(|s| {
                paths.iter().any(|p| {
                    p == &s.path
                        || (p.file_name() == s.path.file_name() && p.parent() == s.path.parent())
                })
            })
            .cloned()
            .collect();
        for s in &hit {
            s.request_reload();
        }
        hit.len()
    }

    /// Wait until no slot is loading (tests; a daemon never needs to).
    pub async fn settled(&self) {
        let slots: Vec<Arc<PluginSlot>> = self.slots().clone();
        for s in slots {
            s.settled().await;
        }
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "not owned by this user, or writable by others",
        ));
    }
    Ok(())
}
