//! Scale overrides on the in-memory backend and store, under paused time: an override moves the
//! pool's floor and ceiling at once and `unscale` gives the config's back; each bound refuses
//! by name and changes nothing; a policy that goes below the floor (as a plugin may) is held at
//! it, and sees the override as its bounds; with a store the override is durable before the
//! answer, survives a crash and a clean shutdown, and is dropped by a start whose config has
//! other sizes; a failing store changes nothing; a reload keeps it unless it changes the pool's
//! sizes or removes the pool, and the store forgets it then.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::future::{BoxFuture, FutureExt};
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::policy_logic::{PoolSnapshot, SizingDecision};
use warmpool_core::{
    BuiltinExhaustion, Manager, ManagerConfig, PoolChange, PoolConfig, ScaleError, ScaleOverride,
    SizingPolicy,
};
use warmpool_fake::{FakeBackend, MemoryStore};

fn o(min_ready: u32, max_ready: u32) -> Option<ScaleOverride> {
    Some(ScaleOverride {
        min_ready,
        max_ready,
    })
}

fn start(
    backend: &Arc<FakeBackend>,
    store: &Arc<MemoryStore>,
    pools: Vec<PoolConfig>,
) -> Arc<Manager<FakeBackend>> {
    let store: Arc<dyn LeaseStore> = store.clone();
    let m = Manager::with_store(
        ManagerConfig::default(),
        pools
            .into_iter()
            .map(|p| (p, policies(BuiltinExhaustion::Cold)))
            .collect(),
        backend.clone(),
        Some(store),
    );
    m.start();
    m
}

/// Wait until the startup reconcile ran (scale requests wait for it with a store).
async fn reconciled(m: &Manager<FakeBackend>) {
    for _ in 0..100 {
        if m.reconciled() {
            return;
        }
        run_for(Duration::from_millis(100)).await;
    }
    panic!("never reconciled");
}

#[tokio::test(start_paused = true)]
async fn an_override_moves_the_floor_at_once_and_unscale_gives_the_config_back() {
    let (m, _b) = manager(
        ManagerConfig::default(),
        vec![(pool("a", 1, 2, 8), policies(BuiltinExhaustion::Cold))],
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert_eq!(m.pool_stats("a").unwrap().scale_override, None);

    let mut events = m.subscribe();
    let s = m.scale("a", Some(5), Some(6)).await.unwrap();
    assert_eq!(s.scale_override, o(5, 6));
    // Said on the event stream, with the sizes.
    let said = std::iter::from_fn(|| events.try_recv().ok())
        .find(|e| e.kind == "scale")
        .expect("a scale event");
    assert_eq!(
        (said.pool.as_str(), said.reason.as_deref()),
        ("a", Some("min_ready=5 max_ready=6"))
    );
    // The target moves with the answer, not at the policy's next turn.
    assert_eq!(s.target, 5, "{s:?}");
    assert_eq!(
        (s.min_ready, s.max_ready),
        (1, 2),
        "the config's sizes stay shown"
    );
    let s = m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.counts.ready, 5);

    // Only a ceiling: the config's floor, under the new ceiling.
    let s = m.scale("a", None, Some(3)).await.unwrap();
    assert_eq!(s.scale_override, o(1, 3));
    run_for(Duration::from_secs(10)).await;
    assert!(m.pool_stats("a").unwrap().counts.ready <= 3);

    let s = m.unscale("a").await.unwrap();
    assert_eq!(s.scale_override, None);
    let said = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| e.kind == "scale")
        .last()
        .expect("a scale event");
    assert_eq!(
        said.reason.as_deref(),
        Some("cleared: the config's sizes apply")
    );
    assert!(s.target <= 2, "{s:?}");
    run_for(Duration::from_secs(10)).await;
    assert!(m.pool_stats("a").unwrap().counts.ready <= 2);
    // Clearing twice is no error.
    assert!(m.unscale("a").await.is_ok());
    assert!(matches!(
        m.scale("nope", Some(1), None).await,
        Err(ScaleError::UnknownPool(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn each_bound_refuses_by_name_and_changes_nothing() {
    let mcfg = ManagerConfig {
        max_containers: 10,
        ..ManagerConfig::default()
    };
    let (m, _b) = manager(
        mcfg,
        vec![
            (pool("a", 1, 4, 8), policies(BuiltinExhaustion::Cold)),
            (pool("b", 3, 3, 6), policies(BuiltinExhaustion::Cold)),
        ],
    );
    m.scale("a", Some(2), None).await.unwrap();
    let cases: [(Option<u64>, Option<u64>, &str); 7] = [
        (None, Some(9), "max_total"),
        (Some(5), None, "max_ready"),
        (Some(3), Some(2), "max_ready"),
        (None, Some(0), "max_ready"),
        (Some(2), Some(u32::MAX.into()), "max_total"),
        // Past u32: refused as asked, not cut.
        (Some(1 << 40), None, "max_ready"),
        // b keeps 3: a floor of 8 leaves the 10 containers of the caps behind.
        (Some(8), Some(8), "limits.max_containers"),
    ];
    for (min, max, bound) in cases {
        match m.scale("a", min, max).await {
            Err(e @ ScaleError::OutOfBounds { .. }) => {
                let ScaleError::OutOfBounds { bound: b, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*b, bound, "{min:?}/{max:?}: {e}");
                assert!(e.to_string().starts_with(bound), "{e}");
                if let Some(big) = min.filter(|m| *m > u64::from(u32::MAX)) {
                    assert!(e.to_string().contains(&big.to_string()), "{e}");
                }
            }
            other => panic!("{min:?}/{max:?}: {other:?}"),
        }
        assert_eq!(m.pool_stats("a").unwrap().scale_override, o(2, 4));
    }
    // Only a ceiling below the config's floor names the floor.
    let (m2, _b2) = manager(
        ManagerConfig::default(),
        vec![(pool("c", 3, 4, 8), policies(BuiltinExhaustion::Cold))],
    );
    let e = m2.scale("c", None, Some(2)).await.unwrap_err();
    assert!(
        matches!(
            e,
            ScaleError::OutOfBounds {
                bound: "min_ready",
                ..
            }
        ),
        "{e}"
    );
    // Within every bound, right at them.
    let s = m.scale("a", Some(7), Some(8)).await.unwrap();
    assert_eq!(s.scale_override, o(7, 8));
}

/// A sizing policy that always asks for `target` and records the bounds it was shown.
struct Fixed {
    target: u32,
    seen: Mutex<Vec<(u32, u32)>>,
}

impl SizingPolicy for Fixed {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        self.seen.lock().unwrap().push((s.min_ready, s.max_ready));
        async move {
            SizingDecision {
                target: self.target,
                reason: "fixed by the test".into(),
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        "test:fixed".into()
    }
}

#[tokio::test(start_paused = true)]
async fn the_policy_sees_the_override_and_is_held_inside_it() {
    for (asks, held_at) in [(0, 3), (50, 4)] {
        let policy = Arc::new(Fixed {
            target: asks,
            seen: Mutex::new(Vec::new()),
        });
        let mut pol = policies(BuiltinExhaustion::Cold);
        pol.sizing = policy.clone();
        let (m, _b) = manager(ManagerConfig::default(), vec![(pool("a", 1, 2, 8), pol)]);
        run_for(Duration::from_secs(3)).await;
        m.scale("a", Some(3), Some(4)).await.unwrap();
        run_for(Duration::from_secs(10)).await;
        let s = m.pool_stats("a").unwrap();
        assert_eq!(s.target, held_at, "a policy asking {asks}: {s:?}");
        assert_eq!(s.counts.ready, held_at);
        assert_eq!(s.target_reason, "fixed by the test");
        let seen = policy.seen.lock().unwrap().clone();
        assert_eq!(
            seen.first(),
            Some(&(1, 2)),
            "before the override: the config's"
        );
        assert_eq!(seen.last(), Some(&(3, 4)), "after it: the override's");
        // Cleared: the config's bounds again (a policy may go below min_ready without one).
        m.unscale("a").await.unwrap();
        run_for(Duration::from_secs(3)).await;
        assert_eq!(policy.seen.lock().unwrap().last(), Some(&(1, 2)));
        assert_eq!(m.pool_stats("a").unwrap().target, asks.min(2));
    }
}

#[tokio::test(start_paused = true)]
async fn with_a_store_it_is_durable_at_the_answer_and_survives_crash_and_shutdown() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(
        &backend,
        &store,
        vec![pool("a", 1, 2, 8), pool("b", 1, 1, 2)],
    );
    reconciled(&m1).await;
    m1.scale("a", Some(4), Some(4)).await.unwrap();
    // In the store at the answer, not at the next group commit.
    let rec = store.snapshot().scales["a"].clone();
    assert_eq!((rec.min_ready, rec.max_ready), (4, 4));
    assert_eq!(rec.config_sizes, [1, 2, 8]);
    m1.scale("b", None, Some(2)).await.unwrap();
    m1.unscale("b").await.unwrap();
    assert!(!store.snapshot().scales.contains_key("b"));

    // kill -9.
    m1.cancel_token().cancel();
    m1.settle_commits().await;
    run_for(Duration::from_millis(100)).await;
    let m2 = start(
        &backend,
        &store,
        vec![pool("a", 1, 2, 8), pool("b", 1, 1, 2)],
    );
    reconciled(&m2).await;
    assert_eq!(m2.pool_stats("a").unwrap().scale_override, o(4, 4));
    assert_eq!(m2.pool_stats("b").unwrap().scale_override, None);
    let s = m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.counts.ready, 4);

    // A clean shutdown clears the leases and the lendable set, not the override.
    m2.shutdown(Duration::from_secs(5)).await;
    let after = store.snapshot();
    assert!(after.leases.is_empty() && after.lendable.is_empty());
    assert!(after.scales.contains_key("a"));
    let m3 = start(&backend, &store, vec![pool("a", 1, 2, 8)]);
    reconciled(&m3).await;
    assert_eq!(m3.pool_stats("a").unwrap().scale_override, o(4, 4));
    m3.shutdown(Duration::from_secs(5)).await;

    // A start whose config gives the pool other sizes drops it, and the store forgets it.
    let m4 = start(&backend, &store, vec![pool("a", 1, 3, 8)]);
    reconciled(&m4).await;
    assert_eq!(m4.pool_stats("a").unwrap().scale_override, None);
    run_for(Duration::from_secs(1)).await;
    assert!(store.snapshot().scales.is_empty());
    m4.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_changes_nothing() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m = start(&backend, &store, vec![pool("a", 1, 2, 8)]);
    reconciled(&m).await;
    m.scale("a", Some(2), None).await.unwrap();
    store.set_failing(true);
    assert!(matches!(
        m.scale("a", Some(3), Some(5)).await,
        Err(ScaleError::Store(_))
    ));
    assert!(matches!(m.unscale("a").await, Err(ScaleError::Store(_))));
    assert_eq!(m.pool_stats("a").unwrap().scale_override, o(2, 2));
    store.set_failing(false);
    run_for(Duration::from_secs(2)).await;
    // Nothing of the refused requests reached the store once it works again.
    let rec = store.snapshot().scales["a"].clone();
    assert_eq!((rec.min_ready, rec.max_ready), (2, 2));
    m.scale("a", Some(3), Some(5)).await.unwrap();
    assert_eq!(store.snapshot().scales["a"].min_ready, 3);
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_it_unless_the_sizes_change_or_the_pool_goes() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m = start(
        &backend,
        &store,
        vec![pool("a", 1, 2, 8), pool("b", 1, 2, 8)],
    );
    reconciled(&m).await;
    m.scale("a", Some(2), None).await.unwrap();
    m.scale("b", Some(2), None).await.unwrap();

    // A timing changed: the override stays.
    let mut a = pool("a", 1, 2, 8);
    a.default_ttl = Duration::from_secs(120);
    let change = |cfg: PoolConfig, resize| PoolChange::Change {
        cfg,
        policies: None,
        respec: false,
        resize,
    };
    m.reconfigure(vec![change(a, false), PoolChange::Keep("b".into())]);
    assert_eq!(m.pool_stats("a").unwrap().scale_override, o(2, 2));

    // The sizes changed: cleared, in the books and in the store.
    m.reconfigure(vec![
        change(pool("a", 1, 4, 8), true),
        PoolChange::Keep("b".into()),
    ]);
    let s = m.pool_stats("a").unwrap();
    assert_eq!(s.scale_override, None);
    assert!(s.target <= 4);
    // b removed: its override is forgotten too.
    m.reconfigure(vec![PoolChange::Keep("a".into())]);
    run_for(Duration::from_secs(1)).await;
    assert!(store.snapshot().scales.is_empty(), "{:?}", store.snapshot());
    assert!(matches!(
        m.scale("b", Some(1), None).await,
        Err(ScaleError::UnknownPool(_))
    ));
}
