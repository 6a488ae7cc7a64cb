//! A lease's own cpus and memory, on the in-memory engine: applied before the lease is handed
//! out, refused (naming the bound, taking no container) outside the pool's `resources:`
//! bounds, changed on a live lease, put back to the pool's before a reuse, and a failed update
//! never leaks a container with unknown limits.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{
    AcquireError, AcquireRequest, BuiltinExhaustion, LeaseError, ManagerConfig, PoolConfig,
    ResizeError, ResourceBounds, ResourceError, Resources, ReuseConfig,
};

const MIB: i64 = 1 << 20;
const CPU: i64 = 1_000_000_000;

/// A pool with its own limits (1 CPU, 64 MiB) and bounds (4 CPUs, 256 MiB).
fn bounded(name: &str) -> PoolConfig {
    let mut p = pool(name, 1, 1, 3);
    p.spec.nano_cpus = Some(CPU);
    p.spec.memory = Some(64 * MIB);
    p.resources = Some(ResourceBounds {
        max_nano_cpus: Some(4 * CPU),
        max_memory: Some(256 * MIB),
    });
    p
}

fn asking(pool: &str, nano_cpus: Option<i64>, memory: Option<i64>) -> AcquireRequest {
    AcquireRequest {
        resources: Some(Resources { nano_cpus, memory }),
        ..request(pool)
    }
}

fn limits(b: &warmpool_fake::FakeBackend, id: &str) -> Resources {
    b.state().containers[id].limits
}

#[tokio::test(start_paused = true)]
async fn an_ask_within_the_bounds_is_on_the_container_before_the_lease_is_handed_out() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(bounded("p"), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(asking("p", None, Some(128 * MIB))).await.unwrap();
    assert_eq!(l.source, "pool", "served warm");
    assert_eq!(l.resources.memory, Some(128 * MIB));
    assert_eq!(l.resources.cpus, Some(1.0), "the pool's cpus, not asked");
    assert_eq!(
        limits(&b, &l.container_id),
        Resources {
            nano_cpus: Some(CPU),
            memory: Some(128 * MIB)
        }
    );
    // A lease that asks nothing shows the pool's.
    run_for(Duration::from_secs(2)).await;
    let plain = m.acquire(request("p")).await.unwrap();
    assert_eq!(plain.resources.memory, Some(64 * MIB));
}

#[tokio::test(start_paused = true)]
async fn asks_outside_the_bounds_name_the_bound_and_take_no_container() {
    let mut cpu_less = bounded("m");
    cpu_less.resources = Some(ResourceBounds {
        max_nano_cpus: None,
        max_memory: Some(256 * MIB),
    });
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![
            (bounded("p"), policies(BuiltinExhaustion::Wait)),
            (cpu_less, policies(BuiltinExhaustion::Wait)),
            (pool("plain", 1, 1, 3), policies(BuiltinExhaustion::Wait)),
        ],
    );
    for p in ["p", "m", "plain"] {
        m.warm_up(p, Duration::from_secs(10)).await.unwrap();
    }
    let bound = |r: Result<_, AcquireError>| match r {
        Err(AcquireError::Resources(ResourceError::OutOfBounds { bound, .. })) => bound,
        other => panic!("{other:?}"),
    };
    let cases = [
        ("p", None, Some(512 * MIB), "resources.max_memory"),
        ("p", Some(5 * CPU), None, "resources.max_cpus"),
        ("p", Some(1), None, "min_cpus"),
        ("p", None, Some(1024), "min_memory"),
        ("m", Some(CPU), None, "resources.max_cpus"),
    ];
    for (p, c, mem, want) in cases {
        assert_eq!(
            bound(m.acquire(asking(p, c, mem)).await),
            want,
            "{p} {c:?} {mem:?}"
        );
    }
    match m.acquire(asking("plain", None, Some(128 * MIB))).await {
        Err(AcquireError::Resources(ResourceError::NotAllowed { pool })) => {
            assert_eq!(pool, "plain")
        }
        other => panic!("{other:?}"),
    }
    for p in ["p", "m", "plain"] {
        let s = m.pool_stats(p).unwrap();
        assert_eq!(
            (s.counts.ready, s.counts.leased),
            (1, 0),
            "{p}: nothing was taken"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_update_at_acquire_destroys_the_container_and_fails_the_acquire() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(bounded("p"), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let warm: Vec<String> = b.live().into_iter().collect();
    b.state().faults.fail_update = 1.0;
    match m.acquire(asking("p", Some(2 * CPU), None)).await {
        Err(AcquireError::Setup { source, .. }) => {
            assert!(source.to_string().contains("update resources"), "{source}")
        }
        other => panic!("{other:?}"),
    }
    assert!(m.leases().is_empty(), "no lease is left behind");
    run_for(Duration::from_secs(2)).await;
    for id in &warm {
        assert!(
            !b.live().contains(id),
            "the container with unknown limits was kept"
        );
    }
    assert_eq!(b.state().updates[1], 1);
    // The pool refills, and serves an acquire that asks nothing.
    b.state().faults.fail_update = 0.0;
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    m.acquire(request("p")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_patch_changes_a_live_lease_within_the_bounds() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(bounded("p"), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("p")).await.unwrap();
    let ask = Resources {
        nano_cpus: Some(2 * CPU),
        memory: None,
    };
    let after = m.resize(&l.lease_id, &ask).await.unwrap();
    assert_eq!(after.resources.cpus, Some(2.0));
    assert_eq!(
        after.resources.memory,
        Some(64 * MIB),
        "memory not asked: kept"
    );
    assert_eq!(limits(&b, &l.container_id).nano_cpus, Some(2 * CPU));
    assert_eq!(m.lease(&l.lease_id).unwrap().resources.cpus, Some(2.0));
    let too_much = Resources {
        nano_cpus: None,
        memory: Some(300 * MIB),
    };
    match m.resize(&l.lease_id, &too_much).await {
        Err(ResizeError::Resources(ResourceError::OutOfBounds { bound, .. })) => {
            assert_eq!(bound, "resources.max_memory")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        limits(&b, &l.container_id).memory,
        Some(64 * MIB),
        "nothing changed"
    );
    match m.resize("no-such-lease", &ask).await {
        Err(ResizeError::Lease(LeaseError::UnknownLease(_))) => {}
        other => panic!("{other:?}"),
    }
}

fn reusable() -> PoolConfig {
    let mut p = bounded("p");
    p.reuse = Some(ReuseConfig {
        max_uses: 5,
        reset: vec![vec!["rm".into(), "-rf".into(), "/work".into()]],
        verify: vec![vec!["true".into()]],
        timeout: Duration::from_secs(5),
        allowed_changes: vec![],
    });
    p
}

#[tokio::test(start_paused = true)]
async fn a_reuse_puts_the_pools_limits_back_before_the_next_lease() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(reusable(), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let first = m
        .acquire(asking("p", Some(3 * CPU), Some(200 * MIB)))
        .await
        .unwrap();
    let out = m.release_for_reuse(&first.lease_id).await.unwrap();
    assert!(out.reused, "{out:?}");
    assert_eq!(
        limits(&b, &first.container_id),
        Resources::of(&reusable().spec),
        "the pool's limits are back"
    );
    assert_eq!(b.state().updates[2], 1, "one restore");
    let next = m.acquire(request("p")).await.unwrap();
    assert_eq!(
        next.container_id, first.container_id,
        "the same container, reused"
    );
    assert_eq!(next.resources.cpus, Some(1.0));
    assert_eq!(next.resources.memory, Some(64 * MIB));
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_destroys_the_container_instead_of_reusing_it() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(reusable(), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(asking("p", None, Some(200 * MIB))).await.unwrap();
    b.state().faults.fail_update = 1.0;
    let out = m.release_for_reuse(&l.lease_id).await.unwrap();
    assert!(!out.reused);
    let reason = out.reason.unwrap();
    assert!(
        reason.starts_with("putting the pool's cpus and memory back"),
        "{reason}"
    );
    run_for(Duration::from_secs(2)).await;
    assert!(!b.live().contains(&l.container_id));
}

#[tokio::test(start_paused = true)]
async fn a_restart_shows_the_limits_a_lease_asked_for() {
    use std::sync::Arc;
    use warmpool_core::Manager;
    use warmpool_core::lease_store::LeaseStore;
    use warmpool_fake::{FakeBackend, MemoryStore};

    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let start = || {
        let s: Arc<dyn LeaseStore> = store.clone();
        let m = Manager::with_store(
            ManagerConfig::default(),
            vec![(bounded("p"), policies(BuiltinExhaustion::Wait))],
            backend.clone(),
            Some(s),
        );
        m.start();
        m
    };
    let m1 = start();
    m1.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let asked = m1
        .acquire(asking("p", None, Some(128 * MIB)))
        .await
        .unwrap();
    let plain = m1.acquire(request("p")).await.unwrap();
    let patched = m1.acquire(request("p")).await.unwrap();
    let ask = Resources {
        nano_cpus: Some(3 * CPU),
        memory: None,
    };
    m1.resize(&patched.lease_id, &ask).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    m1.cancel_token().cancel();
    m1.settle_commits().await;

    let m2 = start();
    // All three containers are leased (max_total 3): nothing to warm; let the restart's
    // reconcile re-attach the leases.
    run_for(Duration::from_secs(5)).await;
    let shown = |id: &str| m2.lease(id).unwrap().resources;
    assert_eq!(shown(&asked.lease_id).memory, Some(128 * MIB));
    assert_eq!(shown(&plain.lease_id).memory, Some(64 * MIB));
    assert_eq!(shown(&patched.lease_id).cpus, Some(3.0));
}
