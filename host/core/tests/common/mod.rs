//! Shared set-up for the pool-logic tests: a manager on the in-memory backend.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use warmpool_core::fake::FakeBackend;
use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{
    BuiltinExhaustion, BuiltinSizing, ContainerSpec, Manager, ManagerConfig, Policies, PoolConfig,
};

pub const CREATE: Duration = Duration::from_millis(400);

pub fn spec() -> ContainerSpec {
    warmpool_core::fake::test_spec("busybox")
}

pub fn pool(name: &str, min: u32, max: u32, total: u32) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        spec: spec(),
        min_ready: min,
        max_ready: max,
        max_total: total,
        default_ttl: Duration::from_secs(60),
        max_ttl: Duration::from_secs(600),
        max_warm_age: None,
        idle_timeout: Duration::from_secs(60),
        wait_timeout: Duration::from_secs(5),
        health_interval: Duration::from_secs(10),
        max_lifetime: None,
        image_check_interval: Duration::from_secs(5),
        reuse: None,
    }
}

pub fn policies(exhaustion: BuiltinExhaustion) -> Policies {
    Policies {
        sizing: Arc::new(BuiltinSizing::Adaptive(AdaptiveConfig::default())),
        exhaustion: Arc::new(exhaustion),
        health: None,
    }
}

pub fn manager(
    cfg: ManagerConfig,
    pools: Vec<(PoolConfig, Policies)>,
) -> (Arc<Manager<FakeBackend>>, Arc<FakeBackend>) {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = Manager::new(cfg, pools, backend.clone());
    m.start();
    (m, backend)
}

/// Let the paused clock run for `d`, so loops and creates make progress.
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}
