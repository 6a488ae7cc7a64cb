//! A pool that names an OCI runtime (`runtime: runsc`), on in-memory engines with paused time:
//! its containers go only to engines that registered the runtime (the fake fails a create
//! anywhere else and records it as a broken promise), a pool whose runtime no engine that is up
//! has is `degraded` with a reason naming it and its acquires are answered at once, and an
//! engine that registers the runtime later is used once the daemon reads its runtimes again.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use warmpool_core::{AcquireError, BuiltinExhaustion, EngineSpec, ManagerConfig, PoolConfig};
use warmpool_fake::FakeBackend;
use warmpool_testkit::fixtures::engines_manager;

fn engine(name: &str) -> EngineSpec {
    EngineSpec {
        name: name.into(),
        labels: BTreeMap::new(),
        max_containers: None,
    }
}

fn with_runtime(name: &str, min: u32, runtime: &str) -> PoolConfig {
    let mut p = pool(name, min, min, min + 4);
    p.spec.runtime = Some(runtime.into());
    p
}

/// Containers of `pool` on each engine (any state), by engine name.
fn placed(m: &warmpool_core::Manager<FakeBackend>, pool: &str) -> BTreeMap<String, u32> {
    m.pool_stats(pool)
        .unwrap()
        .engines
        .into_iter()
        .map(|(e, c)| (e, c.total()))
        .collect()
}

/// No create reached an engine without its runtime (the fake's record of broken promises).
fn no_broken_promise(backends: &[std::sync::Arc<FakeBackend>]) {
    for b in backends {
        let late = b.state().late.clone();
        assert!(late.is_empty(), "{late:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_runtime_pool_lands_only_on_engines_that_have_the_runtime() {
    let (m, backends) = engines_manager(
        ManagerConfig::default(),
        vec![
            (
                with_runtime("g", 4, "runsc"),
                policies(BuiltinExhaustion::Cold),
            ),
            (pool("plain", 4, 4, 8), policies(BuiltinExhaustion::Cold)),
        ],
        vec![engine("a"), engine("b"), engine("c")],
    );
    backends[1].state().runtimes.names.push("runsc".into());
    m.warm_up("g", Duration::from_secs(30)).await.unwrap();
    m.warm_up("plain", Duration::from_secs(30)).await.unwrap();
    let g = placed(&m, "g");
    assert_eq!((g["a"], g["b"], g["c"]), (0, 4, 0), "{g:?}");
    let plain = placed(&m, "plain");
    assert!(
        plain["a"] > 0 && plain["c"] > 0,
        "a pool naming no runtime spreads everywhere: {plain:?}"
    );
    // Warm and cold acquires alike.
    let mut leases = Vec::new();
    for _ in 0..6 {
        leases.push(m.acquire(request("g")).await.unwrap());
    }
    for l in &leases {
        assert_eq!(l.engine, "b", "{l:?}");
    }
    assert!(backends[1].state().runtime_creates >= 6);
    let engines = m.engine_stats();
    assert_eq!(
        engines[1].runtimes.as_ref().unwrap().names,
        vec!["runc".to_string(), "runsc".to_string()]
    );
    assert_eq!(
        engines[0].runtimes.as_ref().unwrap().default.as_deref(),
        Some("runc")
    );
    assert_eq!(m.pool_stats("g").unwrap().runtime.as_deref(), Some("runsc"));
    no_broken_promise(&backends);
}

#[tokio::test(start_paused = true)]
async fn a_runtime_no_engine_has_degrades_the_pool_with_the_reason() {
    let (m, backends) = engines_manager(
        ManagerConfig::default(),
        vec![
            (
                with_runtime("nope", 2, "nope"),
                policies(BuiltinExhaustion::Wait),
            ),
            (pool("plain", 1, 1, 4), policies(BuiltinExhaustion::Cold)),
        ],
        vec![engine("a"), engine("b")],
    );
    m.warm_up("plain", Duration::from_secs(30)).await.unwrap();
    run_for(Duration::from_secs(5)).await;
    let s = m.pool_stats("nope").unwrap();
    assert_eq!(s.status, "degraded");
    let reason = s.reason.unwrap();
    assert!(
        reason.contains("\"nope\"") && reason.contains("a: runc"),
        "{reason}"
    );
    assert_eq!(s.counts.total(), 0, "nothing was created for it");
    // Even with the `wait` strategy the acquire is answered at once, not after a wait.
    let started = tokio::time::Instant::now();
    match m.acquire(request("nope")).await {
        Err(AcquireError::Degraded { last_error, .. }) => {
            assert!(last_error.contains("nope"), "{last_error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(10));
    assert_eq!(m.pool_stats("nope").unwrap().acquires.rejected, 1);
    assert_eq!(m.pool_stats("plain").unwrap().status, "ok");

    // An engine that registers the runtime later (dockerd reloads daemon.json on SIGHUP) is
    // read again within 30 s, and the pool fills there.
    backends[0].state().runtimes.names.push("nope".into());
    m.warm_up("nope", Duration::from_secs(40)).await.unwrap();
    let s = m.pool_stats("nope").unwrap();
    assert_eq!((s.status, s.reason.as_deref()), ("ok", None));
    assert_eq!(placed(&m, "nope")["b"], 0);
    no_broken_promise(&backends);
}

#[tokio::test(start_paused = true)]
async fn while_every_engine_with_the_runtime_is_down_the_pool_is_degraded() {
    let (m, backends) = engines_manager(
        ManagerConfig::default(),
        vec![(
            with_runtime("g", 2, "runsc"),
            policies(BuiltinExhaustion::Cold),
        )],
        vec![engine("a"), engine("b")],
    );
    backends[1].state().runtimes.names.push("runsc".into());
    m.warm_up("g", Duration::from_secs(30)).await.unwrap();
    backends[1].state().down = true;
    run_for(Duration::from_secs(10)).await;
    let s = m.pool_stats("g").unwrap();
    assert_eq!(s.status, "degraded", "{s:?}");
    assert!(s.reason.unwrap().contains("runsc"));
    assert!(matches!(
        m.acquire(request("g")).await,
        Err(AcquireError::Degraded { .. })
    ));
    assert_eq!(
        placed(&m, "g")["a"],
        0,
        "nothing went to engine a meanwhile"
    );
    backends[1].state().down = false;
    m.warm_up("g", Duration::from_secs(30)).await.unwrap();
    assert_eq!(m.acquire(request("g")).await.unwrap().engine, "b");
    no_broken_promise(&backends);
}
