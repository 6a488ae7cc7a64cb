//! Opt-in reuse returns a container only after a verified reset and within max_uses;
//! a moved image tag drains old containers as they come free; max_lifetime recycles.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{BuiltinExhaustion, ManagerConfig, ReuseConfig};

fn reuse(verify: &str) -> ReuseConfig {
    ReuseConfig {
        max_uses: 2,
        reset: vec![vec!["rm".into(), "-rf".into(), "/work".into()]],
        verify: vec![vec![verify.into()]],
        timeout: Duration::from_secs(5),
        allowed_changes: vec![],
    }
}

#[tokio::test(start_paused = true)]
async fn reuse_returns_the_container_until_max_uses() {
    let mut p = pool("p", 1, 1, 3);
    p.reuse = Some(reuse("true"));
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Wait))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let first = m.acquire(request("p")).await.unwrap();
    let out = m.release_for_reuse(&first.lease_id).await.unwrap();
    assert!(out.reused, "{out:?}");
    let second = m.acquire(request("p")).await.unwrap();
    assert_eq!(
        second.container_id, first.container_id,
        "the reset container came back"
    );
    let out = m.release_for_reuse(&second.lease_id).await.unwrap();
    assert!(!out.reused);
    assert_eq!(out.reason.as_deref(), Some("max_uses reached (2 of 2)"));
    run_for(Duration::from_secs(2)).await;
    assert!(
        !b.live().contains(&first.container_id),
        "a worn-out container was kept"
    );
    let s = m.pool_stats("p").unwrap();
    assert_eq!(s.counters.reused_total, 1);
    assert_eq!(s.counts.ready, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_verification_destroys_the_container() {
    let mut p = pool("p", 1, 1, 3);
    p.reuse = Some(reuse("false"));
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("p")).await.unwrap();
    let out = m.release_for_reuse(&l.lease_id).await.unwrap();
    assert!(!out.reused);
    assert!(
        out.reason
            .unwrap()
            .starts_with("verify [\"false\"] exited 1")
    );
    run_for(Duration::from_secs(1)).await;
    assert!(!b.live().contains(&l.container_id));
    assert_eq!(m.pool_stats("p").unwrap().counters.reset_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_single_use_pool_destroys_on_reuse_requests() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("p", 1, 1, 3), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("p")).await.unwrap();
    let out = m.release_for_reuse(&l.lease_id).await.unwrap();
    assert_eq!(
        out.reason.as_deref(),
        Some("reuse is not enabled for this pool")
    );
    run_for(Duration::from_secs(1)).await;
    assert!(!b.live().contains(&l.container_id));
}

#[tokio::test(start_paused = true)]
async fn a_moved_image_drains_old_containers_without_touching_leases() {
    let mut p = pool("p", 3, 3, 8);
    p.reuse = Some(reuse("true"));
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let leased = m.acquire(request("p")).await.unwrap();
    let old: Vec<String> = b.live().iter().cloned().collect();
    b.state().image_id = "sha256:two".into();
    run_for(Duration::from_secs(20)).await;
    let live = b.live().clone();
    assert!(
        live.contains(&leased.container_id),
        "a leased container was killed for drift"
    );
    let old_ready: Vec<_> = old
        .iter()
        .filter(|id| **id != leased.container_id && live.contains(*id))
        .collect();
    assert!(
        old_ready.is_empty(),
        "ready containers of the old image survive: {old_ready:?}"
    );
    assert_eq!(m.pool_stats("p").unwrap().counts.ready, 3);
    // The leased one, of the old image, is not reused when it comes back.
    let out = m.release_for_reuse(&leased.lease_id).await.unwrap();
    assert_eq!(
        out.reason.as_deref(),
        Some("the pool's image has moved to a new ID")
    );
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_recycles_ready_containers() {
    let mut p = pool("p", 2, 2, 4);
    p.max_lifetime = Some(Duration::from_secs(30));
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    let first: Vec<String> = b.live().iter().cloned().collect();
    run_for(Duration::from_secs(40)).await;
    assert!(first.iter().all(|id| !b.live().contains(id)));
    assert_eq!(m.pool_stats("p").unwrap().counts.ready, 2);
}
