//! Leases expire, idle pools shrink one container at a time, and old containers are recycled.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{AcquireRequest, BuiltinExhaustion, LeaseError, ManagerConfig};

#[tokio::test(start_paused = true)]
async fn ttl_expiry_destroys_the_container() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 1, 1, 3), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m
        .acquire(AcquireRequest {
            pool: "p".into(),
            ttl: Some(Duration::from_secs(3)),
            wait: None,
            owner: None,
            tenant: None,
            engine_labels: Default::default(),
            setup: None,
            resources: None,
        })
        .await
        .unwrap();
    assert!(b.live().contains(&l.container_id));
    run_for(Duration::from_secs(2)).await;
    assert!(m.lease(&l.lease_id).is_ok(), "lease ended early");
    run_for(Duration::from_secs(3)).await;
    assert!(matches!(
        m.lease(&l.lease_id),
        Err(LeaseError::UnknownLease(_))
    ));
    assert!(
        !b.live().contains(&l.container_id),
        "expired container still live"
    );
    assert_eq!(m.pool_stats("p").unwrap().counters.expired_total, 1);
}

#[tokio::test(start_paused = true)]
async fn renew_extends_but_never_past_max_ttl() {
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 1, 1, 3), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m
        .acquire(AcquireRequest {
            pool: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let renewed = m.renew(&l.lease_id, Duration::from_secs(100_000)).unwrap();
    assert_eq!(renewed.ttl_remaining_s, 600, "capped at max_ttl");
}

#[tokio::test(start_paused = true)]
async fn idle_pool_scales_down_one_at_a_time() {
    let mut p = pool("p", 1, 6, 10);
    p.idle_timeout = Duration::from_secs(60);
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    // A burst of 5 acquires raises the target (adaptive) and refill follows.
    for _ in 0..5 {
        let l = m
            .acquire(AcquireRequest {
                pool: "p".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        m.release(&l.lease_id).unwrap();
    }
    run_for(Duration::from_secs(5)).await;
    let grown = m.pool_stats("p").unwrap();
    assert_eq!(grown.target, 6, "{grown:?}");
    assert_eq!(grown.counts.ready, 6);
    // Past idle_timeout the target falls to min_ready, and the reaper trims one per tick.
    run_for(Duration::from_secs(61)).await;
    let mut seen = vec![];
    for _ in 0..8 {
        seen.push(m.pool_stats("p").unwrap().counts.ready);
        run_for(Duration::from_secs(1)).await;
    }
    assert_eq!(*seen.last().unwrap(), 1, "{seen:?}");
    for w in seen.windows(2) {
        assert!(w[0] - w[1] <= 1, "dropped more than one per tick: {seen:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn containers_past_max_warm_age_are_recycled() {
    let mut p = pool("p", 2, 2, 4);
    p.max_warm_age = Some(Duration::from_secs(30));
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let first: Vec<String> = b.live().iter().cloned().collect();
    run_for(Duration::from_secs(40)).await;
    let now: Vec<String> = b.live().iter().cloned().collect();
    assert!(
        first.iter().all(|id| !now.contains(id)),
        "old containers survive: {first:?} {now:?}"
    );
    assert_eq!(m.pool_stats("p").unwrap().counts.ready, 2);
}
