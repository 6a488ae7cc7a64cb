//! Config reload on the in-memory backend: a resize keeps every container, an added pool fills,
//! a removed pool drains while its open lease keeps working, and a spec change recycles ready
//! containers gently without reusing leased ones.

mod common;

use std::time::Duration;

use common::*;
use warmpool_core::{AcquireError, AcquireRequest, BuiltinExhaustion, ManagerConfig, PoolChange};

fn keep(name: &str) -> PoolChange {
    PoolChange::Keep(name.into())
}

/// Changed sizes: no new policies, the same spec.
fn resize(cfg: warmpool_core::PoolConfig) -> PoolChange {
    PoolChange::Change {
        cfg,
        policies: None,
        respec: false,
        resize: true,
    }
}

#[tokio::test(start_paused = true)]
async fn a_resize_keeps_every_container_and_an_added_pool_fills() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(pool("a", 2, 2, 8), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let before = b.live().clone();

    let report = m.reconfigure(vec![
        resize(pool("a", 4, 4, 8)),
        PoolChange::Add {
            cfg: pool("b", 1, 1, 2),
            policies: policies(BuiltinExhaustion::Cold),
        },
    ]);
    assert_eq!(report.changed, ["a"]);
    assert_eq!(report.added, ["b"]);
    assert!(report.respec.is_empty());
    let a = m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert_eq!(a.counts.ready, 4);
    assert_eq!(a.min_ready, 4);
    m.warm_up("b", Duration::from_secs(10)).await.unwrap();
    assert!(
        before.is_subset(&b.live()),
        "a resize destroyed a container"
    );
    assert_eq!(b.state().destroyed_total, 0);

    // Shrinking trims one container per tick, down to the new size.
    m.reconfigure(vec![resize(pool("a", 1, 1, 8)), keep("b")]);
    run_for(Duration::from_secs(10)).await;
    assert_eq!(m.pool_stats("a").unwrap().counts.ready, 1);

    // The same config again (every pool kept, as the reload plan finds it) changes nothing.
    let same = m.reconfigure(vec![keep("a"), keep("b")]);
    assert!(same.is_empty(), "{same:?}");
}

#[tokio::test(start_paused = true)]
async fn a_removed_pool_drains_but_its_lease_lives_on() {
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![
            (pool("a", 3, 3, 6), policies(BuiltinExhaustion::Cold)),
            (pool("b", 1, 1, 2), policies(BuiltinExhaustion::Cold)),
        ],
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    m.warm_up("b", Duration::from_secs(10)).await.unwrap();
    let lease = m.acquire(request("a")).await.unwrap();
    run_for(Duration::from_secs(2)).await;

    let report = m.reconfigure(vec![keep("b")]);
    assert_eq!(report.removed, ["a"]);
    run_for(Duration::from_secs(2)).await;
    assert!(matches!(
        m.acquire(request("a")).await,
        Err(AcquireError::UnknownPool(_))
    ));
    assert_eq!(m.pool_names(), ["b"]);
    // Only b's container and the lease's remain: a's ready ones are gone, none recreated.
    assert_eq!(b.live().len(), 2, "{:?}", b.live());
    assert!(b.live().contains(&lease.container_id));
    assert!(m.exec(&lease.lease_id, Default::default()).await.is_ok());

    m.release(&lease.lease_id).unwrap();
    run_for(Duration::from_secs(1)).await;
    assert!(!b.live().contains(&lease.container_id));
    assert_eq!(b.live().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_spec_change_recycles_ready_containers_one_at_a_time() {
    let mut cfg = pool("a", 3, 3, 8);
    cfg.reuse = Some(warmpool_core::ReuseConfig {
        max_uses: 5,
        reset: vec![vec!["true".into()]],
        verify: vec![vec!["true".into()]],
        timeout: Duration::from_secs(5),
        allowed_changes: vec![],
    });
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(cfg.clone(), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let lease = m.acquire(request("a")).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    let old = b.live().clone();

    let mut changed = cfg.clone();
    changed.spec.env.insert("VERSION".into(), "2".into());
    let report = m.reconfigure(vec![PoolChange::Change {
        cfg: changed,
        policies: None,
        respec: true,
        resize: false,
    }]);
    assert_eq!(report.respec, ["a"]);
    // Recycling is gradual: after one tick, at most one old ready container is gone.
    run_for(Duration::from_millis(1100)).await;
    let gone_now = old.difference(&b.live()).count();
    assert!(gone_now <= 1, "{gone_now} recycled in one tick");
    run_for(Duration::from_secs(10)).await;
    let live = b.live().clone();
    let kept: Vec<_> = old.intersection(&live).collect();
    assert_eq!(
        kept,
        vec![&lease.container_id],
        "only the leased one is left"
    );
    assert_eq!(m.pool_stats("a").unwrap().counts.ready, 3);

    // The leased container of the old spec is not reused.
    let out = m.release_for_reuse(&lease.lease_id).await.unwrap();
    assert!(!out.reused);
    assert!(out.reason.unwrap().contains("spec changed"));
}

#[tokio::test(start_paused = true)]
async fn a_warm_up_whose_pool_is_removed_meanwhile_answers_unknown_pool() {
    let mut cfg = pool("gone", 0, 1, 2);
    cfg.wait_timeout = Duration::from_secs(30);
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(cfg, policies(BuiltinExhaustion::Wait))],
    );
    run_for(Duration::from_millis(1500)).await;
    // A queued acquire raises the target, so the warm-up waits for a container.
    let waiter = {
        let m = m.clone();
        tokio::spawn(async move {
            m.acquire(AcquireRequest {
                pool: "gone".into(),
                ..Default::default()
            })
            .await
        })
    };
    let warm = {
        let m = m.clone();
        tokio::spawn(async move { m.warm_up("gone", Duration::from_secs(20)).await })
    };
    run_for(Duration::from_millis(10)).await;
    m.reconfigure(vec![]);
    let r = warm.await.expect("warm-up never panics");
    assert!(
        matches!(r, Err(warmpool_core::WarmUpError::UnknownPool(_))),
        "{r:?}"
    );
    assert!(waiter.await.unwrap().is_err());
}
