//! # warmpool-plugin-host: sizing, exhaustion and health as sandboxed wasm components
//!
//! Operators change how a pool scales, what it does when dry and how it judges health by
//! dropping a new `.wasm` file in place: no rebuild, no restart. A plugin implements one world of
//! `wit/warmpool-plugin@0.1.0` and is a pure function of what the host passes in.
//!
//! Where things live:
//! - [`bindings`]: every generated binding, one module per world.
//! - [`engine`]: one wasmtime engine (epoch deadlines, pooling allocator, memory caps) and
//!   linkers that grant nothing but `log`.
//! - [`component`]: compile (through a `.cwasm` cache the daemon writes itself), world check,
//!   store reuse, and typed calls.
//! - [`slot`]: the plugin serving one pool for one decision, swapped atomically, with the
//!   built-in policy as fallback and benching after repeated failures; it implements the core's
//!   policy traits.
//! - [`watch`]: debounced hot reload.
//! - [`check`]: `warmpool plugin check`.

pub mod bindings;
pub mod check;
pub mod component;
pub mod convert;
pub mod engine;
pub mod slot;
#[doc(hidden)]
pub mod testing;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warmpool_core::PluginStatus;

pub use component::{PluginError, World};
pub use engine::{Limits, PluginEngine};
pub use slot::{PluginSlot, WasmExhaustion, WasmHealth, WasmSizing};

/// All plugin slots of a daemon, on one engine.
pub struct PluginHost {
    pub engine: Arc<PluginEngine>,
    cache: Option<PathBuf>,
    slots: Arc<Mutex<Vec<Arc<PluginSlot>>>>,
    /// Tells the watcher that the set of slots changed (a config reload), so it watches the
    /// directories of the new set.
    rewatch: Arc<tokio::sync::Notify>,
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
            slots: Arc::default(),
            rewatch: Arc::new(tokio::sync::Notify::new()),
            listener: Arc::default(),
        }))
    }

    /// Create the slot for `pool`'s `world` plugin and load it. A file that fails to load leaves
    /// the slot empty (the built-in serves) and reports why; hot reload may fix it later.
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
        let _ = slot.reload();
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
        slot
    }

    /// Be told of every reload from now on (the daemon turns them into `reload` events).
    pub fn on_reload(&self, listener: slot::ReloadListener) {
        let _ = self.listener.set(listener);
    }

    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.status())
            .collect()
    }

    /// Start hot reload for every slot, present and future.
    pub fn watch(&self, cancel: CancellationToken, tracker: &TaskTracker) -> notify::Result<()> {
        watch::spawn(self.slots.clone(), self.rewatch.clone(), cancel, tracker)
    }

    /// Forget `pool`'s slots: a config reload removed the pool or rebuilds its plugins.
    pub fn drop_pool(&self, pool: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.pool != pool);
        self.rewatch.notify_one();
    }

    /// After slots were added by a config reload: watch their directories too.
    pub fn rewatch(&self) {
        self.rewatch.notify_one();
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
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "not owned by this user, or writable by others",
        ));
    }
    Ok(())
}
