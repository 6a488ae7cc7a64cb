//! The one place that dispatches over the three worlds' generated types: a component checked
//! against its world ([`Pre`]), an instance of it ([`Bound`]), `init`, and which instance an
//! export is called on ([`Export`]). Everything else handles any world alike.

use std::path::Path;

use wasmtime::Store;
use wasmtime::component::Component;

use crate::bindings::{exhaustion, health, sizing};
use crate::error::PluginError;
use crate::sandbox::{Linkers, State};
use crate::world::World;

/// A component's pre-instantiated form for its world.
pub(crate) enum Pre {
    Sizing(sizing::SizingPolicyPre<State>),
    Exhaustion(exhaustion::ExhaustionStrategyPre<State>),
    Health(health::HealthCheckPre<State>),
}

/// A live instance of a plugin, bound to its world's exports.
pub(crate) enum Bound {
    Sizing(sizing::SizingPolicy),
    Exhaustion(exhaustion::ExhaustionStrategy),
    Health(health::HealthCheck),
}

impl Pre {
    /// Check `component` (read from `path`) against `world`: every import it needs is granted
    /// and every export the world defines is there.
    pub(crate) fn new(
        linkers: &Linkers,
        component: &Component,
        world: World,
        path: &Path,
    ) -> Result<Pre, PluginError> {
        let werr = |e: wasmtime::Error| PluginError::World {
            path: path.display().to_string(),
            world: world.wit_name(),
            message: format!("{e:#}"),
        };
        let pre = linkers
            .get(world)
            .instantiate_pre(component)
            .map_err(werr)?;
        Ok(match world {
            World::Sizing => Pre::Sizing(sizing::SizingPolicyPre::new(pre).map_err(werr)?),
            World::Exhaustion => {
                Pre::Exhaustion(exhaustion::ExhaustionStrategyPre::new(pre).map_err(werr)?)
            }
            World::Health => Pre::Health(health::HealthCheckPre::new(pre).map_err(werr)?),
        })
    }

    /// A fresh instance in `store` (not yet `init`ed).
    pub(crate) async fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Bound> {
        match self {
            Pre::Sizing(p) => p.instantiate_async(store).await.map(Bound::Sizing),
            Pre::Exhaustion(p) => p.instantiate_async(store).await.map(Bound::Exhaustion),
            Pre::Health(p) => p.instantiate_async(store).await.map(Bound::Health),
        }
    }
}

impl Bound {
    /// Call the world's `init` with the plugin's settings: `Ok(Err(..))` is the guest refusing
    /// them, `Err` a trap.
    pub(crate) async fn init(
        &self,
        store: &mut Store<State>,
        config: &Vec<(String, String)>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bound::Sizing(b) => b.call_init(store, config).await,
            Bound::Exhaustion(b) => b.call_init(store, config).await,
            Bound::Health(b) => b.call_init(store, config).await,
        }
    }
}

/// A world's bindings, whose exports a call runs on.
pub(crate) trait Export: Send + Sync + 'static {
    /// The instance's bindings for this world. A plugin is loaded for one world and only that
    /// world's exports are called on it, so any other world here is a bug in the host.
    fn of(bound: &Bound) -> &Self;
}

impl Export for sizing::SizingPolicy {
    fn of(bound: &Bound) -> &Self {
        match bound {
            Bound::Sizing(b) => b,
            _ => unreachable!("world checked at load"),
        }
    }
}

impl Export for exhaustion::ExhaustionStrategy {
    fn of(bound: &Bound) -> &Self {
        match bound {
            Bound::Exhaustion(b) => b,
            _ => unreachable!("world checked at load"),
        }
    }
}

impl Export for health::HealthCheck {
    fn of(bound: &Bound) -> &Self {
        match bound {
            Bound::Health(b) => b,
            _ => unreachable!("world checked at load"),
        }
    }
}
