//! Several engines under one manager, on in-memory engines with paused time: a pool spreads
//! over the engines within every cap, acquires with labels reach only matching engines, an
//! engine that goes down stops lending while the pool refills on the others and its leases
//! answer `EngineUnavailable` until it returns, and a restart re-attaches each lease on its own
//! engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{
    AcquireError, AcquireRequest, BuiltinExhaustion, EngineSpec, LeaseError, Manager, ManagerConfig,
};
use warmpool_fake::{FakeBackend, MemoryStore};
use warmpool_testkit::fixtures::engines_manager;

fn engine(name: &str, zone: &str, max: Option<u32>) -> EngineSpec {
    EngineSpec {
        name: name.into(),
        labels: BTreeMap::from([
            ("zone".to_string(), zone.to_string()),
            ("name".to_string(), name.to_string()),
        ]),
        max_containers: max,
    }
}

fn on(labels: &[(&str, &str)]) -> AcquireRequest {
    AcquireRequest {
        pool: "p".into(),
        engine_labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// Containers each engine holds, by the engine's name, over every state.
fn per_engine(m: &Manager<FakeBackend>) -> BTreeMap<String, u32> {
    m.engine_stats()
        .into_iter()
        .map(|e| (e.name, e.counted))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_pool_spreads_over_the_engines_within_every_cap() {
    let cfg = ManagerConfig {
        max_containers: 7,
        ..Default::default()
    };
    let (m, backends) = engines_manager(
        cfg,
        vec![(pool("p", 6, 6, 10), policies(BuiltinExhaustion::Wait))],
        vec![
            engine("a", "x", Some(1)),
            engine("b", "x", None),
            engine("c", "y", None),
        ],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let counts = per_engine(&m);
    assert_eq!(counts["a"], 1, "engine a's own cap: {counts:?}");
    assert_eq!(counts["b"] + counts["c"], 5, "{counts:?}");
    assert!(counts["b"].abs_diff(counts["c"]) <= 1, "spread: {counts:?}");
    for (b, name) in backends.iter().zip(["a", "b", "c"]) {
        assert_eq!(b.live().len() as u32, counts[name], "engine {name}");
    }
    // Raise the demand past the global cap: no engine and no total ever goes over.
    for _ in 0..4 {
        let _ = m.acquire(on(&[])).await.unwrap();
        run_for(Duration::from_millis(300)).await;
        let counts = per_engine(&m);
        assert!(counts["a"] <= 1, "{counts:?}");
        assert!(counts.values().sum::<u32>() <= 7, "{counts:?}");
        let live: usize = backends.iter().map(|b| b.live().len()).sum();
        assert!(live <= 7, "the engines hold {live}");
    }
    let stats = m.pool_stats("p").unwrap();
    assert_eq!(stats.engines.len(), 3);
    assert_eq!(
        stats.engines.values().map(|c| c.total()).sum::<u32>(),
        stats.counts.total()
    );
}

#[tokio::test(start_paused = true)]
async fn acquires_with_labels_reach_only_matching_engines() {
    let (m, _b) = engines_manager(
        ManagerConfig::default(),
        vec![(pool("p", 4, 4, 10), policies(BuiltinExhaustion::Wait))],
        vec![engine("a", "x", None), engine("b", "y", None)],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    // More than engine b had ready: the rest wait for creates placed on b.
    for i in 0..4 {
        let l = match m.acquire(on(&[("zone", "y")])).await {
            Ok(l) => l,
            Err(e) => panic!("acquire {i}: {e}: {:#?}", m.pool_stats("p")),
        };
        assert_eq!(l.engine, "b", "{l:?}");
    }
    let l = m.acquire(on(&[("zone", "x")])).await.unwrap();
    assert_eq!(l.engine, "a");
    let err = m.acquire(on(&[("zone", "nowhere")])).await.unwrap_err();
    assert!(matches!(err, AcquireError::NoSuchEngine { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_down_engine_stops_lending_its_leases_wait_and_it_comes_back() {
    let (m, backends) = engines_manager(
        ManagerConfig::default(),
        vec![(pool("p", 4, 4, 12), policies(BuiltinExhaustion::Wait))],
        vec![engine("a", "x", None), engine("b", "x", None)],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let on_a = m.acquire(on(&[("name", "a")])).await.unwrap();
    let on_b = m.acquire(on(&[("name", "b")])).await.unwrap();
    run_for(Duration::from_secs(1)).await;
    let a_live_before: BTreeSet<String> = backends[0].live().clone();

    backends[0].state().down = true;
    run_for(Duration::from_secs(3)).await;
    assert!(m.is_ready(), "one engine is still up");
    let stats = m.engine_stats();
    assert!(!stats[0].up && stats[1].up, "{stats:?}");
    // Its lease waits; the other engine's lease works.
    let err = m
        .exec(&on_a.lease_id, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LeaseError::EngineUnavailable { ref engine, .. } if engine == "a"),
        "{err:?}"
    );
    assert!(m.exec(&on_b.lease_id, Default::default()).await.is_ok());
    // Acquires keep succeeding, all from engine b, which refills the pool.
    for _ in 0..6 {
        let l = m.acquire(on(&[])).await.unwrap();
        assert_eq!(l.engine, "b");
        run_for(Duration::from_millis(200)).await;
    }
    let err = m.acquire(on(&[("name", "a")])).await.unwrap_err();
    assert!(matches!(err, AcquireError::EngineUnavailable(_)), "{err:?}");
    assert_eq!(
        backends[0].live().clone(),
        a_live_before,
        "nothing touched engine a while it was down"
    );

    backends[0].state().down = false;
    run_for(Duration::from_secs(3)).await;
    assert!(m.engine_stats()[0].up);
    assert!(m.exec(&on_a.lease_id, Default::default()).await.is_ok());
    // Engine a lends again: an acquire for it is served from its ready containers.
    let l = m.acquire(on(&[("name", "a")])).await.unwrap();
    assert_eq!(l.engine, "a");
    // And the books agree with both engines.
    let accounted: BTreeSet<String> = m.accounted().into_iter().filter_map(|(_, id)| id).collect();
    let live: BTreeSet<String> = backends.iter().flat_map(|b| b.live().clone()).collect();
    assert_eq!(accounted, live);
}

#[tokio::test(start_paused = true)]
async fn a_restart_reattaches_each_lease_on_its_own_engine() {
    let store = Arc::new(MemoryStore::default());
    let specs = [engine("a", "x", None), engine("b", "y", None)];
    let backends: Vec<Arc<FakeBackend>> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Arc::new(FakeBackend::attach(warmpool_fake::FakeEngine::with_prefix(
                CREATE,
                i as u64 + 1,
                &format!("f{n}"),
            )))
        })
        .collect();
    let start = || {
        let dyn_store: Arc<dyn LeaseStore> = store.clone();
        let m = Manager::builder(ManagerConfig::default(), backends[0].clone())
            .engines(
                specs
                    .iter()
                    .cloned()
                    .zip(backends.iter().cloned())
                    .collect(),
            )
            .pools(vec![(
                pool("p", 4, 4, 10),
                policies(BuiltinExhaustion::Wait),
            )])
            .store(Some(dyn_store))
            .build();
        m.start();
        m
    };
    let m1 = start();
    m1.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let la = m1.acquire(on(&[("zone", "x")])).await.unwrap();
    let lb = m1.acquire(on(&[("zone", "y")])).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    m1.cancel_token().cancel();
    m1.settle_commits().await;
    run_for(Duration::from_millis(100)).await;

    let m2 = start();
    m2.warm_up("p", Duration::from_secs(10)).await.unwrap();
    assert_eq!(m2.lease(&la.lease_id).unwrap().engine, "a");
    assert_eq!(m2.lease(&lb.lease_id).unwrap().engine, "b");
    assert!(m2.exec(&la.lease_id, Default::default()).await.is_ok());
    assert!(m2.exec(&lb.lease_id, Default::default()).await.is_ok());
    let accounted: BTreeSet<String> = m2
        .accounted()
        .into_iter()
        .filter_map(|(_, id)| id)
        .collect();
    let live: BTreeSet<String> = backends.iter().flat_map(|b| b.live().clone()).collect();
    assert_eq!(accounted, live, "nothing unaccounted on either engine");
}
