//! Loading a component (through the `.cwasm` cache), checking it implements the expected world,
//! and calling it. Each loaded plugin keeps one store and instance across calls; any error
//! drops them (a trap poisons an instance for good) and the next call instantiates afresh from
//! the `InstancePre`, which costs microseconds.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use warmpool_core::policy_logic as p;
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use crate::bindings::{exhaustion, health, sizing};
use crate::convert;
use crate::engine::{PluginEngine, State};

/// The three plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Sizing,
    Exhaustion,
    Health,
}

impl World {
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Sizing => "sizing-policy",
            World::Exhaustion => "exhaustion-strategy",
            World::Health => "health-check",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Sizing => "sizing",
            World::Exhaustion => "exhaustion",
            World::Health => "health",
        })
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sizing" | "sizing-policy" => Ok(World::Sizing),
            "exhaustion" | "exhaustion-strategy" => Ok(World::Exhaustion),
            "health" | "health-check" => Ok(World::Health),
            other => Err(format!(
                "unknown world {other:?} (sizing, exhaustion or health)"
            )),
        }
    }
}

/// Why a plugin could not be loaded or a call failed. Each names the stage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    #[error("read {path}: {message}")]
    Read { path: String, message: String },
    #[error("compile {path}: not a valid wasm component: {message}")]
    Compile { path: String, message: String },
    #[error("link {path}: not a {world} component: {message}")]
    World {
        path: String,
        world: &'static str,
        message: String,
    },
    #[error("init: {0}")]
    Init(String),
    #[error("call exceeded its deadline of {0} ticks (~10 ms each)")]
    Deadline(u64),
    #[error("call hit the memory cap of {0} bytes")]
    Memory(usize),
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("malformed answer: {0}")]
    Malformed(String),
}

enum Pre {
    Sizing(sizing::SizingPolicyPre<State>),
    Exhaustion(exhaustion::ExhaustionStrategyPre<State>),
    Health(health::HealthCheckPre<State>),
}

enum Bound {
    Sizing(sizing::SizingPolicy),
    Exhaustion(exhaustion::ExhaustionStrategy),
    Health(health::HealthCheck),
}

/// A compiled, world-checked plugin with its live instance.
pub struct Loaded {
    pub world: World,
    pub path: PathBuf,
    pub sha256: String,
    name: Arc<str>,
    config: Vec<(String, String)>,
    engine: Arc<PluginEngine>,
    pre: Pre,
    live: Mutex<Option<(Store<State>, Bound)>>,
}

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

/// Compile `bytes`, or load the `.cwasm` this daemon wrote for the same content and engine.
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
    let component = Component::new(&engine.engine, bytes).map_err(|e| err(format!("{e:#}")))?;
    if let Some(file) = cached {
        match component.serialize() {
            Ok(art) => {
                let tmp = file.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, art)
                    .and_then(|()| std::fs::rename(&tmp, &file))
                    .is_err()
                {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(file = %file.display(), "could not write compile cache entry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialise a compiled component"),
        }
    }
    Ok(component)
}

impl Loaded {
    /// Read, compile (or load from cache), and check `path` against `world`. Initialises one
    /// instance with `config`, so a plugin that rejects its settings fails here.
    pub fn load(
        engine: &Arc<PluginEngine>,
        cache: Option<&Path>,
        world: World,
        path: &Path,
        config: &[(String, String)],
    ) -> Result<Loaded, PluginError> {
        let bytes = std::fs::read(path).map_err(|e| PluginError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let sha = sha256_hex(&bytes);
        let component = compile(engine, cache, path, &bytes, &sha)?;
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
        let name: Arc<str> = path
            .file_name()
            .map_or_else(|| "plugin".into(), |n| n.to_string_lossy().into());
        let loaded = Loaded {
            world,
            path: path.to_path_buf(),
            sha256: sha,
            name,
            config: config.to_vec(),
            engine: engine.clone(),
            pre,
            live: Mutex::new(None),
        };
        loaded.with_instance(|_, _| Ok(()))?;
        Ok(loaded)
    }

    fn instantiate(&self) -> Result<(Store<State>, Bound), PluginError> {
        let mut store = self.engine.store(self.name.clone());
        store.set_epoch_deadline(self.engine.limits.deadline_ticks);
        let classify = |store: &mut Store<State>, e: wasmtime::Error| self.classify(store, e);
        let bound = match &self.pre {
            Pre::Sizing(p) => Bound::Sizing(
                p.instantiate(&mut store)
                    .map_err(|e| classify(&mut store, e))?,
            ),
            Pre::Exhaustion(p) => Bound::Exhaustion(
                p.instantiate(&mut store)
                    .map_err(|e| classify(&mut store, e))?,
            ),
            Pre::Health(p) => Bound::Health(
                p.instantiate(&mut store)
                    .map_err(|e| classify(&mut store, e))?,
            ),
        };
        let init = match &bound {
            Bound::Sizing(b) => b.call_init(&mut store, &self.config),
            Bound::Exhaustion(b) => b.call_init(&mut store, &self.config),
            Bound::Health(b) => b.call_init(&mut store, &self.config),
        };
        match init {
            Ok(Ok(())) => Ok((store, bound)),
            Ok(Err(msg)) => Err(PluginError::Init(msg)),
            Err(e) => Err(classify(&mut store, e)),
        }
    }

    fn classify(&self, store: &mut Store<State>, e: wasmtime::Error) -> PluginError {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Deadline(self.engine.limits.deadline_ticks),
            _ if format!("{e:#}").contains("memory") && format!("{e:#}").contains("grow") => {
                PluginError::Memory(self.engine.limits.max_memory)
            }
            _ => {
                let said = store.data_mut().last_error_log.take();
                PluginError::Trap(match said {
                    Some(msg) => format!("{msg} ({})", root_cause(&e)),
                    None => format!("{e:#}"),
                })
            }
        }
    }

    /// Run `f` on the live instance (instantiating it first if needed) under a fresh deadline.
    /// On any error the instance is dropped: the next call starts from a clean one.
    fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Store<State>, &Bound) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.is_none() {
            *live = Some(self.instantiate()?);
        }
        let (store, bound) = live.as_mut().expect("set above");
        store.set_epoch_deadline(self.engine.limits.deadline_ticks);
        match f(store, bound) {
            Ok(r) => Ok(r),
            Err(e) => {
                let err = self.classify(store, e);
                *live = None;
                Err(err)
            }
        }
    }

    pub fn decide(&self, s: &p::PoolSnapshot) -> Result<p::SizingDecision, PluginError> {
        let snap = convert::snapshot(s);
        let d = self.with_instance(|store, b| match b {
            Bound::Sizing(b) => b.call_decide(store, &snap),
            _ => unreachable!("world checked at load"),
        })?;
        Ok(convert::decision(d))
    }

    pub fn on_exhausted(
        &self,
        r: &p::ExhaustionRequest,
        s: &p::PoolSnapshot,
    ) -> Result<p::ExhaustionAction, PluginError> {
        let (req, snap) = (convert::request(r), convert::snapshot(s));
        let a = self.with_instance(|store, b| match b {
            Bound::Exhaustion(b) => b.call_on_exhausted(store, req, &snap),
            _ => unreachable!("world checked at load"),
        })?;
        Ok(convert::action(a))
    }

    pub fn plan(&self, c: &p::ContainerInfo) -> Result<Vec<p::Probe>, PluginError> {
        let info = convert::container(c);
        let probes = self.with_instance(|store, b| match b {
            Bound::Health(b) => b.call_plan(store, &info),
            _ => unreachable!("world checked at load"),
        })?;
        Ok(probes.into_iter().map(convert::probe).collect())
    }

    pub fn judge(
        &self,
        c: &p::ContainerInfo,
        results: &[p::ProbeResult],
    ) -> Result<p::Verdict, PluginError> {
        let info = convert::container(c);
        let rs: Vec<_> = results.iter().map(convert::probe_result).collect();
        let v = self.with_instance(|store, b| match b {
            Bound::Health(b) => b.call_judge(store, &info, &rs),
            _ => unreachable!("world checked at load"),
        })?;
        Ok(convert::verdict(v))
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain()
        .last()
        .map_or_else(|| e.to_string(), |c| c.to_string())
}
