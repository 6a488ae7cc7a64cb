//! Failing creates back off exponentially and open a breaker: the pool reports `degraded` and
//! never storms the engine; it recovers on its own once creates succeed again.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{AcquireError, BuiltinExhaustion, ManagerConfig};

#[tokio::test(start_paused = true)]
async fn failing_creates_open_the_breaker_then_recover() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 3, 3, 6), policies(BuiltinExhaustion::Cold))],
    );
    b.state().fail_always = Some("image not found".into());
    run_for(Duration::from_secs(20)).await;
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.status, "degraded", "{s:?}");
    assert_eq!(
        s.creates.last_error.as_deref(),
        Some("create container for image busybox: image not found")
    );
    // Back-off 0.5, 1, 2, 4, 8 s …: about a dozen attempts in 20 s, not hundreds.
    let attempts = s.creates.failures;
    assert!((5..=15).contains(&attempts), "attempts in 20 s: {attempts}");
    // A cold acquire on a degraded pool is refused at once rather than adding load.
    let err = m.acquire(request("p")).await.unwrap_err();
    assert!(matches!(err, AcquireError::Degraded { .. }), "{err:?}");

    b.state().fail_always = None;
    m.warm_up("p", Duration::from_secs(120))
        .await
        .expect("recovers");
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.status, "ok");
    assert_eq!(s.counts.ready, 3);
}

#[tokio::test(start_paused = true)]
async fn engine_outage_is_not_a_pool_failure() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 2, 2, 4), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    b.state().down = true;
    run_for(Duration::from_secs(3)).await;
    assert!(!m.is_ready());
    let err = m.acquire(request("p")).await.unwrap_err();
    assert!(matches!(err, AcquireError::EngineUnavailable(_)), "{err:?}");
    b.state().down = false;
    run_for(Duration::from_secs(3)).await;
    assert!(m.is_ready());
    assert_eq!(m.pool_stats("p").unwrap().creates.consecutive_failures, 0);
}

/// Each engine has its own breaker for the pool: an engine whose creates fail opens its own,
/// gets one trial create at a time after a growing back-off, and the pool keeps serving from the
/// other engine without being `degraded`. Once the engine heals, a trial works, its breaker
/// closes and the pool spreads over both again.
#[tokio::test(start_paused = true)]
async fn a_failing_engine_opens_its_own_breaker_and_the_pool_fills_elsewhere() {
    let engine = |name: &str| warmpool_core::EngineSpec {
        name: name.into(),
        labels: Default::default(),
        max_containers: None,
    };
    let (m, backends) = warmpool_testkit::fixtures::engines_manager(
        ManagerConfig::default(),
        vec![(pool("p", 4, 4, 8), policies(BuiltinExhaustion::Cold))],
        vec![engine("good"), engine("bad")],
    );
    backends[1].state().fail_always = Some("no space left on device".into());
    m.warm_up("p", Duration::from_secs(10))
        .await
        .expect("the good engine fills the pool");
    // Steady demand for a minute: every lease taken makes the refill place a create, and the
    // spread prefers the bad engine whenever its breaker lets it try.
    let served = churn(&m, 30).await;
    assert!(served.iter().all(|e| e == "good"), "{served:?}");
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.status, "ok", "one engine still makes containers: {s:?}");
    assert_eq!(s.engines["good"].ready, 4, "{:?}", s.engines);
    let bad = &s.creates.breakers["bad"];
    assert!(bad.open && bad.consecutive_failures >= 5, "{bad:?}");
    assert!(!s.creates.breakers.contains_key("good"), "{s:?}");
    // Back-off 0.5, 1, 2, 4 … s: a handful of attempts in a minute, one at a time.
    let attempts = backends[1].state().create_log.len();
    assert!(
        (5..=9).contains(&attempts),
        "attempts on the bad engine: {attempts}"
    );
    // Open: one trial at a time from now on, however many creates the pool wants.
    backends[1].state().creating_peak = 0;
    for _ in 0..3 {
        for _ in 0..3 {
            let _ = m.acquire(request("p")).await.expect("an acquire");
        }
        run_for(Duration::from_secs(40)).await;
        for l in m.leases() {
            m.release(&l.lease_id).unwrap();
        }
    }
    assert_eq!(backends[1].state().creating_peak, 1, "one trial at a time");
    assert_eq!(m.pool_stats("p").unwrap().status, "ok");

    backends[1].state().fail_always = None;
    churn(&m, 60).await;
    let s = m.pool_stats("p").unwrap();
    assert!(s.creates.breakers.is_empty(), "{:?}", s.creates.breakers);
    assert!(
        s.engines["bad"].ready >= 1,
        "the healed engine gets its share again: {:?}",
        s.engines
    );
}

/// `n` rounds of: take a lease from pool `p`, hold it 2 s, release it. Returns the engines
/// that served them.
async fn churn(
    m: &std::sync::Arc<warmpool_core::Manager<warmpool_fake::FakeBackend>>,
    n: usize,
) -> Vec<String> {
    let mut engines = Vec::new();
    for _ in 0..n {
        let l = m.acquire(request("p")).await.expect("an acquire");
        run_for(Duration::from_secs(2)).await;
        m.release(&l.lease_id).expect("a release");
        engines.push(l.engine);
    }
    engines
}

/// A ready container made before the creates started failing proves nothing about them: it
/// sitting out its probation, or being lent, must not reset the count, or a pool that keeps
/// old containers would never open its breaker while every new create fails.
#[tokio::test(start_paused = true)]
async fn old_ready_containers_do_not_keep_a_failing_breaker_closed() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 3, 3, 6), policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    run_for(Duration::from_secs(30)).await; // every ready container is past probation
    b.state().fail_always = Some("no space left on device".into());
    let _held = m.acquire(request("p")).await.expect("a warm acquire");
    run_for(Duration::from_secs(60)).await;
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.status, "degraded", "{s:?}");
    assert!(s.creates.breakers["default"].open, "{s:?}");
    assert_eq!(s.counts.ready, 2, "the old containers still serve");
}
