//! Shutdown destroys every container the daemon made, fails queued acquires, refuses new ones,
//! and finishes within its grace period; startup removes what an earlier run left behind.

mod common;

use std::time::Duration;

use common::*;
use tokio::time::Instant;
use warmpool_core::{AcquireError, AcquireRequest, BuiltinExhaustion, ManagerConfig};

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_nothing_and_is_bounded() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![
            (pool("a", 3, 3, 6), policies(BuiltinExhaustion::Cold)),
            (pool("w", 0, 1, 1), policies(BuiltinExhaustion::Wait)),
        ],
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let _leased = m
        .acquire(AcquireRequest {
            pool: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _w = m
        .acquire(AcquireRequest {
            pool: "w".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A queued acquire is told the daemon is going away rather than left hanging.
    let m2 = m.clone();
    let queued = tokio::spawn(async move {
        m2.acquire(AcquireRequest {
            pool: "w".into(),
            wait: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(5)).await;

    let t0 = Instant::now();
    let report = m.shutdown(Duration::from_secs(10)).await;
    assert!(t0.elapsed() <= Duration::from_secs(10));
    assert!(report.drained);
    assert!(b.live().is_empty(), "left behind: {:?}", b.live());
    assert!(matches!(
        queued.await.unwrap(),
        Err(AcquireError::ShuttingDown)
    ));
    let err = m
        .acquire(AcquireRequest {
            pool: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AcquireError::ShuttingDown));
}

#[tokio::test(start_paused = true)]
async fn startup_sweeps_leftovers_before_creating() {
    let backend = std::sync::Arc::new(warmpool_fake::FakeBackend::new(CREATE));
    backend.live().insert("left-by-a-crash".into());
    let m = warmpool_core::Manager::new(
        ManagerConfig::default(),
        vec![(pool("a", 1, 1, 2), policies(BuiltinExhaustion::Cold))],
        backend.clone(),
    );
    m.start();
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let live = backend.live().clone();
    assert!(!live.contains("left-by-a-crash"));
    assert_eq!(live.len(), 1);
}
