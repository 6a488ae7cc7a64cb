//! Compiling a plugin: content-addressed, through the `.cwasm` cache, and checked against its
//! world. Sharing one compile between every slot that loads the same content for the same world
//! is the engine's (see `PluginEngine::compiled`). A compile is blocking CPU work: callers run it
//! on the plugin runtime's blocking pool.

use std::hash::{Hash, Hasher};
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::error::PluginError;
use crate::instance::Pre;
use crate::sandbox::Linkers;
use crate::world::World;

/// A compiled, world-checked component: shared by every slot that loads the same content for
/// the same world (see `PluginEngine::compiled`).
pub struct Compiled {
    /// Lowercase hex SHA-256 of the component's bytes (its content address).
    pub sha256: String,
    /// The world the component was checked against and pre-instantiated for.
    pub world: World,
    /// Bytes of machine code the compile produced.
    pub code_bytes: usize,
    pub(crate) pre: Pre,
}

/// Lowercase hex SHA-256 of `bytes`: the content address of a plugin file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The engine's compatibility hash: a `.cwasm` from another wasmtime build or config is never
/// deserialised, because its key differs.
fn compat_key(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Compiled {
    /// Check `component` (compiled from `path`, whose content's sha256 is `sha`) against
    /// `world`, and pre-instantiate it for that world.
    pub(crate) fn check(
        linkers: &Linkers,
        component: &Component,
        world: World,
        path: &Path,
        sha: &str,
    ) -> Result<Compiled, PluginError> {
        let pre = Pre::new(linkers, component, world, path)?;
        let range = component.image_range();
        Ok(Compiled {
            sha256: sha.to_string(),
            world,
            code_bytes: (range.end as usize).saturating_sub(range.start as usize),
            pre,
        })
    }
}

/// `bytes` (read from `path`, content sha256 `sha`) compiled for `engine`: the `.cwasm` this
/// daemon wrote in `cache` for the same content and engine if there is one, else compiled now on
/// a throw-away engine made from `compile_config` (and written to the cache).
// wasmtime's deserialize is unsafe: it trusts the bytes to be its own compiled code. Each call
// below says why that holds.
#[allow(unsafe_code)]
pub(crate) fn component(
    engine: &Engine,
    compile_config: &Config,
    cache: Option<&Path>,
    path: &Path,
    bytes: &[u8],
    sha: &str,
) -> Result<Component, PluginError> {
    let err = |message: String| PluginError::Compile {
        path: path.display().to_string(),
        message,
    };
    let cached = cache.map(|dir| dir.join(format!("{sha}-{}.cwasm", compat_key(engine))));
    if let Some(file) = &cached
        && file.exists()
    {
        // SAFETY: only files this daemon wrote are read: the cache directory is created by the
        // daemon with mode 0700 (see `PluginHost::new`), and the name binds content and engine.
        match unsafe { Component::deserialize_file(engine, file) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring unreadable cache entry")
            }
        }
    }
    // Compile on an engine of its own, dropped right after: an engine keeps its compiler's
    // working buffers for as long as it lives (tens of MB after a Python plugin).
    let art = Engine::new(compile_config)
        .and_then(|compiler| compiler.precompile_component(bytes))
        .map_err(|e| err(format!("{e:#}")))?;
    if let Some(file) = cached {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &art)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(file = %file.display(), "could not write compile cache entry");
        } else {
            // Serve from the file just written: its code and data are mapped pages the kernel
            // shares and can drop, where a copy in memory is ~40 MB of heap per Python plugin.
            // SAFETY: as above, a file this daemon just wrote in its 0700 directory.
            match unsafe { Component::deserialize_file(engine, &file) } {
                Ok(mapped) => return Ok(mapped),
                Err(e) => tracing::warn!(file = %file.display(), error = %e,
                    "the cache entry just written did not load; serving from memory"),
            }
        }
    }
    // SAFETY: `art` was produced just above by an engine of the same configuration.
    unsafe { Component::deserialize(engine, &art) }.map_err(|e| err(format!("{e:#}")))
}
