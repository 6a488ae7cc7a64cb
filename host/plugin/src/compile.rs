//! Compiling a plugin: content-addressed, through the `.cwasm` cache, one compile shared by
//! every slot that loads the same content for the same world, and checked against that world.
//! A compile is blocking CPU work: callers run it on the plugin runtime's blocking pool.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::bindings::{exhaustion, health, sizing};
use crate::component::{PluginError, World};
use crate::engine::{PluginEngine, State};

/// A component's pre-instantiated form for its world.
pub(crate) enum Pre {
    Sizing(sizing::SizingPolicyPre<State>),
    Exhaustion(exhaustion::ExhaustionStrategyPre<State>),
    Health(health::HealthCheckPre<State>),
}

/// A compiled, world-checked component: shared by every slot that loads the same content for
/// the same world (see `PluginEngine::shared`).
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
fn compat_key(engine: &wasmtime::Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Compiled {
    /// Compile `bytes` (or load the `.cwasm` this daemon wrote for the same content and engine)
    /// and check it against `world`. Blocking and CPU-heavy: run it off the async workers.
    pub fn new(
        engine: &PluginEngine,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        bytes: &[u8],
        sha: &str,
    ) -> Result<Arc<Compiled>, PluginError> {
        let gate = engine.gate(sha, world);
        let _one = gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = engine.shared(sha, world) {
            return Ok(c);
        }
        let component = compile(engine, cache, path, bytes, sha)?;
        let werr = |e: wasmtime::Error| PluginError::World {
            path: path.display().to_string(),
            world: world.wit_name(),
            message: format!("{e:#}"),
        };
        let pre = match world {
            World::Sizing => Pre::Sizing(
                sizing::SizingPolicyPre::new(
                    engine.sizing.instantiate_pre(&component).map_err(werr)?,
                )
                .map_err(werr)?,
            ),
            World::Exhaustion => Pre::Exhaustion(
                exhaustion::ExhaustionStrategyPre::new(
                    engine
                        .exhaustion
                        .instantiate_pre(&component)
                        .map_err(werr)?,
                )
                .map_err(werr)?,
            ),
            World::Health => Pre::Health(
                health::HealthCheckPre::new(
                    engine.health.instantiate_pre(&component).map_err(werr)?,
                )
                .map_err(werr)?,
            ),
        };
        let range = component.image_range();
        let c = Arc::new(Compiled {
            sha256: sha.to_string(),
            world,
            code_bytes: (range.end as usize).saturating_sub(range.start as usize),
            pre,
        });
        engine.share(&c);
        Ok(c)
    }
}

// wasmtime's deserialize is unsafe: it trusts the bytes to be its own compiled code. Each call
// below says why that holds.
#[allow(unsafe_code)]
fn compile(
    engine: &PluginEngine,
    cache: Option<&Path>,
    path: &Path,
    bytes: &[u8],
    sha: &str,
) -> Result<Component, PluginError> {
    let err = |message: String| PluginError::Compile {
        path: path.display().to_string(),
        message,
    };
    let cached = cache.map(|dir| dir.join(format!("{sha}-{}.cwasm", compat_key(&engine.engine))));
    if let Some(file) = &cached
        && file.exists()
    {
        // SAFETY: only files this daemon wrote are read: the cache directory is created by the
        // daemon with mode 0700 (see `PluginHost::new`), and the name binds content and engine.
        match unsafe { Component::deserialize_file(&engine.engine, file) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring unreadable cache entry")
            }
        }
    }
    // Compile on an engine of its own, dropped right after: an engine keeps its compiler's
    // working buffers for as long as it lives (tens of MB after a Python plugin).
    let art = wasmtime::Engine::new(&engine.compile_config)
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
            match unsafe { Component::deserialize_file(&engine.engine, &file) } {
                Ok(mapped) => return Ok(mapped),
                Err(e) => tracing::warn!(file = %file.display(), error = %e,
                    "the cache entry just written did not load; serving from memory"),
            }
        }
    }
    // SAFETY: `art` was produced just above by an engine of the same configuration.
    unsafe { Component::deserialize(&engine.engine, &art) }.map_err(|e| err(format!("{e:#}")))
}
