//! A pool's policies: the built-ins its YAML names, each wrapped by its wasm plugin when one is
//! configured (the built-in then stays as the fallback, and serves while the plugin compiles).

use std::sync::Arc;

use warmpool_config::{Config, HealthPlan, PoolPlan};
use warmpool_core::{BuiltinHealth, ExhaustionStrategy, HealthCheck, Policies, SizingPolicy};
use warmpool_plugin_host::{Limits, PluginHost, WasmExhaustion, WasmHealth, WasmSizing, World};

/// The policies a pool runs: each plugin named in its config behind a slot with the built-in
/// as fallback, and the built-ins for the rest.
pub fn policies(plan: &PoolPlan, host: &PluginHost) -> Policies {
    let name = &plan.pool.name;
    let mut sizing: Arc<dyn SizingPolicy> = Arc::new(plan.sizing.clone());
    let mut exhaustion: Arc<dyn ExhaustionStrategy> = Arc::new(plan.exhaustion);
    let mut health: Option<Arc<dyn HealthCheck>> =
        plan.health.as_ref().map(|h| -> Arc<dyn HealthCheck> {
            match h {
                HealthPlan::Exec(e) => Arc::new(BuiltinHealth::Exec(e.clone())),
                HealthPlan::Http(p) => Arc::new(BuiltinHealth::Http(p.clone())),
            }
        });
    if let Some(r) = &plan.plugins.sizing {
        let slot = host.slot(name, World::Sizing, &r.path, r.config.clone());
        sizing = Arc::new(WasmSizing {
            slot,
            fallback: sizing,
        });
    }
    if let Some(r) = &plan.plugins.exhaustion {
        let slot = host.slot(name, World::Exhaustion, &r.path, r.config.clone());
        exhaustion = Arc::new(WasmExhaustion {
            slot,
            fallback: exhaustion,
        });
    }
    if let Some(r) = &plan.plugins.health {
        let slot = host.slot(name, World::Health, &r.path, r.config.clone());
        let fallback = health.unwrap_or_else(|| Arc::new(BuiltinHealth::Pass));
        health = Some(Arc::new(WasmHealth { slot, fallback }));
    }
    Policies {
        sizing,
        exhaustion,
        health,
    }
}

/// The plugin limits a config asks for.
pub fn plugin_limits(cfg: &Config) -> Limits {
    let ps = &cfg.plugins;
    Limits {
        deadline: ps.deadline,
        load_deadline: ps.load_deadline,
        max_memory: ps.max_memory,
        bench_after: ps.bench_after,
        ..Limits::default()
    }
}
