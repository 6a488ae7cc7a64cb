//! Failing creates back off exponentially and open a breaker: the pool reports `degraded` and
//! never storms the engine; it recovers on its own once creates succeed again.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{AcquireError, AcquireRequest, BuiltinExhaustion, ManagerConfig};

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
    let err = m
        .acquire(AcquireRequest {
            pool: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
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
    let err = m
        .acquire(AcquireRequest {
            pool: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AcquireError::EngineUnavailable(_)), "{err:?}");
    b.state().down = false;
    run_for(Duration::from_secs(3)).await;
    assert!(m.is_ready());
    assert_eq!(m.pool_stats("p").unwrap().creates.consecutive_failures, 0);
}
