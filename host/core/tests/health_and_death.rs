//! A container that dies or fails its probe is removed, replaced, and never handed out.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use warmpool_core::policy_logic::health::ExecProbe;
use warmpool_core::{AcquireRequest, BuiltinExhaustion, BuiltinHealth, ManagerConfig};

#[tokio::test(start_paused = true)]
async fn a_killed_ready_container_is_replaced_and_never_leased() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 2, 2, 4), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let victim = b.live().iter().next().cloned().unwrap();
    b.kill(&victim).await;
    tokio::task::yield_now().await;
    run_for(Duration::from_millis(10)).await;
    for _ in 0..2 {
        let l = m
            .acquire(AcquireRequest {
                pool: "p".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_ne!(l.container_id, victim, "a dead container was leased");
    }
    assert_eq!(m.pool_stats("p").unwrap().counters.unhealthy_total, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_replaces_the_container() {
    let mut pols = policies(BuiltinExhaustion::Cold);
    pols.health = Some(Arc::new(BuiltinHealth::Exec(ExecProbe {
        argv: vec!["true".into()],
        timeout_ms: 1000,
    })));
    let (m, b) = manager(ManagerConfig::default(), vec![(pool("p", 2, 2, 4), pols)]);
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let sick = b.live().iter().next().cloned().unwrap();
    b.state().sick.insert(sick.clone());
    run_for(Duration::from_secs(15)).await;
    assert!(!b.live().contains(&sick), "sick container kept");
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.counts.ready, 2);
    assert_eq!(s.counters.unhealthy_total, 1);
}
