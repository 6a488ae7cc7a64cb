//! Shared fixtures: one container spec, one pool config and one set of policies for the core,
//! API and simulation tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{
    BuiltinExhaustion, BuiltinSizing, ContainerSpec, Manager, ManagerConfig, Policies, PoolConfig,
};
use warmpool_fake::{FakeBackend, FakeEngine};

/// The fake engine's create latency in the core tests.
pub const CREATE: Duration = Duration::from_millis(400);

/// A container spec for tests: the hardened defaults, `sleep infinity` as the command.
pub fn test_spec(image: &str) -> ContainerSpec {
    ContainerSpec {
        image: image.into(),
        cmd: vec!["sleep".into(), "infinity".into()],
        env: BTreeMap::new(),
        workdir: None,
        user: None,
        labels: BTreeMap::new(),
        memory: None,
        nano_cpus: None,
        pids_limit: None,
        runtime: None,
        network: "none".into(),
        read_only: false,
        init: true,
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        no_new_privileges: true,
        exec: Default::default(),
        setup: vec![],
        setup_timeout: Duration::from_secs(10),
        image_source: Default::default(),
    }
}

/// A pool of `busybox` with these sizes and the defaults of a real config.
pub fn pool(name: &str, min: u32, max: u32, total: u32) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        spec: test_spec("busybox"),
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
        resources: None,
        probation: Duration::from_secs(10),
        start_settle: Duration::from_millis(100),
        hibernation: Default::default(),
    }
}

/// Adaptive sizing, the given exhaustion strategy, no health check.
pub fn policies(exhaustion: BuiltinExhaustion) -> Policies {
    Policies {
        sizing: Arc::new(BuiltinSizing::Adaptive(AdaptiveConfig::default())),
        exhaustion: Arc::new(exhaustion),
        health: None,
    }
}

/// A started manager on a fresh fake engine.
pub fn manager(
    cfg: ManagerConfig,
    pools: Vec<(PoolConfig, Policies)>,
) -> (Arc<Manager<FakeBackend>>, Arc<FakeBackend>) {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = Manager::new(cfg, pools, backend.clone());
    m.start();
    (m, backend)
}

/// A started manager on one in-memory engine per spec, each with its own backend (container
/// IDs start with `fake-<name>`).
pub fn engines_manager(
    cfg: ManagerConfig,
    pools: Vec<(PoolConfig, Policies)>,
    engines: Vec<warmpool_core::EngineSpec>,
) -> (Arc<Manager<FakeBackend>>, Vec<Arc<FakeBackend>>) {
    let backends: Vec<Arc<FakeBackend>> = engines
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(FakeBackend::attach(FakeEngine::with_prefix(
                CREATE,
                i as u64 + 1,
                &format!("fake-{}", s.name),
            )))
        })
        .collect();
    let m = Manager::builder(cfg, backends[0].clone())
        .engines(engines.into_iter().zip(backends.iter().cloned()).collect())
        .pools(pools)
        .build();
    m.start();
    (m, backends)
}

/// Let the paused clock run for `d`, so loops and creates make progress.
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}
