//! Refill by approvals: concurrent acquires and releases never push a pool past `max_ready`,
//! `max_total`, the global cap, or the create concurrency bound.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{AcquireRequest, BuiltinExhaustion, ManagerConfig};

#[tokio::test(start_paused = true)]
async fn fills_to_min_ready_and_no_further() {
    let (m, backend) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 3, 5, 10), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(30))
        .await
        .expect("warm-up");
    run_for(Duration::from_secs(10)).await;
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.counts.ready, 3);
    assert_eq!(s.counts.creating, 0);
    assert_eq!(
        backend.state().created_total,
        3,
        "no create beyond the target"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_acquires_respect_every_cap() {
    let cfg = ManagerConfig {
        max_containers: 12,
        max_concurrent_creates: 3,
        ..Default::default()
    };
    let (m, backend) = manager(
        cfg,
        vec![
            (pool("a", 4, 6, 9), policies(BuiltinExhaustion::Cold)),
            (pool("b", 4, 6, 9), policies(BuiltinExhaustion::Wait)),
        ],
    );
    m.warm_up("a", Duration::from_secs(30)).await.unwrap();
    m.warm_up("b", Duration::from_secs(30)).await.unwrap();

    let mut clients = Vec::new();
    for i in 0..40u32 {
        let m = m.clone();
        let name = if i % 2 == 0 { "a" } else { "b" };
        clients.push(tokio::spawn(async move {
            let req = AcquireRequest {
                pool: name.into(),
                wait: Some(Duration::from_secs(4)),
                ..Default::default()
            };
            if let Ok(l) = m.acquire(req).await {
                tokio::time::sleep(Duration::from_millis(300 + u64::from(i) * 37 % 500)).await;
                m.release(&l.lease_id).unwrap();
            }
        }));
    }
    // Sample the invariants while the storm runs.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut all = 0;
        for s in m.all_pool_stats() {
            let refilling = s.counts.creating - s.creating_cold;
            assert!(
                s.counts.ready + refilling <= s.max_ready,
                "refill overshoots max_ready: {s:?}"
            );
            assert!(s.counts.ready <= s.max_ready, "ready over max_ready: {s:?}");
            assert!(
                s.counts.total() <= s.max_total,
                "pool over max_total: {s:?}"
            );
            all += s.counts.total();
        }
        assert!(all <= 12, "global cap exceeded: {all}");
        assert!(backend.live().len() <= 12);
    }
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        backend.state().creating_peak <= 3,
        "create concurrency exceeded: {}",
        backend.state().creating_peak
    );
}
