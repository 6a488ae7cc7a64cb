//! What an acquire does when no container is ready: `wait`, `fail` and `cold`.

mod common;

use std::time::Duration;

use common::*;
use tokio::time::Instant;
use warmpool_core::{AcquireError, AcquireRequest, BuiltinExhaustion, ManagerConfig};

fn req(pool: &str, wait_ms: Option<u64>) -> AcquireRequest {
    AcquireRequest {
        pool: pool.into(),
        ttl: None,
        wait: wait_ms.map(Duration::from_millis),
        owner: None,
        tenant: None,
        engine_labels: Default::default(),
        setup: None,
        resources: None,
    }
}

#[tokio::test(start_paused = true)]
async fn warm_acquire_comes_from_the_pool() {
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 2, 2, 4), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(req("p", None)).await.unwrap();
    assert_eq!(l.source, "pool");
    assert!(
        l.acquire_ms < 1.0,
        "warm acquire took {} ms of paused time",
        l.acquire_ms
    );
}

#[tokio::test(start_paused = true)]
async fn fail_answers_exhausted_with_a_retry_hint() {
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 1, 1, 4), policies(BuiltinExhaustion::Fail))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    m.acquire(req("p", None)).await.unwrap();
    match m.acquire(req("p", None)).await {
        Err(AcquireError::Exhausted { retry_after, .. }) => {
            // The fake's creates take 400 ms and settle 100 ms; the hint is the measured median.
            assert_eq!(retry_after, CREATE + pool("p", 1, 1, 4).start_settle);
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(m.pool_stats("p").unwrap().acquires.rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn wait_is_fifo_and_bounded_by_the_client_deadline() {
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 0, 2, 2), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    // Nothing ready (min_ready 0): the first waiter is served by the refill its wait triggers.
    let t0 = Instant::now();
    let first = m.acquire(req("p", Some(2_000))).await.unwrap();
    assert_eq!(first.source, "pool");
    assert!(t0.elapsed() >= CREATE);
    // A deadline shorter than a create: the wait gives up in time, and says so.
    let t1 = Instant::now();
    let err = m.acquire(req("p", Some(100))).await.unwrap_err();
    assert!(matches!(err, AcquireError::Exhausted { .. }), "{err:?}");
    let waited = t1.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(150),
        "{waited:?}"
    );

    // FIFO: three waiters queued in order are served in order.
    let mut order = Vec::new();
    let mut handles = Vec::new();
    for i in 0..2 {
        let m = m.clone();
        handles.push(tokio::spawn(async move {
            (i, m.acquire(req("p", Some(5_000))).await)
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    m.release(&first.lease_id).unwrap();
    for h in handles {
        let (i, r) = h.await.unwrap();
        let l = r.unwrap();
        order.push((l.acquired_at.clone(), i));
    }
    order.sort();
    assert_eq!(order.iter().map(|o| o.1).collect::<Vec<_>>(), vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn cold_creates_on_demand_within_the_caps() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 0, 1, 2), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let t0 = Instant::now();
    let a = m.acquire(req("p", None)).await.unwrap();
    assert_eq!(a.source, "cold");
    assert!(t0.elapsed() >= CREATE);
    let _b2 = m.acquire(req("p", None)).await.unwrap();
    // max_total 2 reached: no room for a third cold create; it waits wait_timeout (5 s), then 429.
    let t1 = Instant::now();
    let err = m.acquire(req("p", None)).await.unwrap_err();
    assert!(matches!(err, AcquireError::Exhausted { .. }), "{err:?}");
    assert!(t1.elapsed() >= Duration::from_secs(5));
    assert!(b.live().len() <= 2);
    // Once a lease ends, a queued cold acquire gets the room back.
    let m2 = m.clone();
    let waiter = tokio::spawn(async move { m2.acquire(req("p", None)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    m.release(&a.lease_id).unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.pool, "p");
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.acquires.cold, 2);
}
