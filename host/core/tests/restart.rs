//! Restart without loss, on the in-memory backend and store: committed leases come back with
//! their containers and expiry; ready containers that never could have been lent are re-adopted;
//! a container that might have been lent without a committed lease is destroyed, never adopted;
//! a stale spec or image is removed; and a failing store lends nothing.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{
    AcquireRequest, BuiltinExhaustion, LeaseError, Manager, ManagerConfig, PoolConfig, ReuseConfig,
};
use warmpool_fake::{Agent, FakeBackend, MemoryStore};

fn start(
    backend: &Arc<FakeBackend>,
    store: &Arc<MemoryStore>,
    pool_cfg: PoolConfig,
) -> Arc<Manager<FakeBackend>> {
    let store: Arc<dyn LeaseStore> = store.clone();
    let m = Manager::with_store(
        ManagerConfig::default(),
        vec![(pool_cfg, policies(BuiltinExhaustion::Wait))],
        backend.clone(),
        Some(store),
    );
    m.start();
    m
}

/// A crash between two commits: every task stops, nothing is cleaned up. (Waiting out a commit
/// in flight keeps the test deterministic: the store is then exactly what survived.)
async fn crash(m: &Arc<Manager<FakeBackend>>) {
    m.cancel_token().cancel();
    m.settle_commits().await;
}

fn acquire(owner: &str) -> AcquireRequest {
    AcquireRequest {
        pool: "a".into(),
        owner: Some(owner.into()),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn committed_leases_come_back_and_unlent_containers_are_adopted() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(&backend, &store, pool("a", 6, 6, 10));
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l1 = m1.acquire(acquire("alice")).await.unwrap();
    let l2 = m1.acquire(acquire("bob")).await.unwrap();
    m1.renew(&l2.lease_id, Duration::from_secs(300)).unwrap();
    // Let the next group commit and the refill run.
    run_for(Duration::from_secs(2)).await;
    crash(&m1).await;
    let persisted = store.snapshot();
    assert_eq!(persisted.leases.len(), 2);
    let lendable: BTreeSet<String> = persisted.lendable.keys().cloned().collect();
    let before: BTreeSet<String> = backend.live().clone();
    assert!(before.len() >= 8, "6 ready + 2 leased, got {before:?}");
    run_for(Duration::from_millis(100)).await;
    let creates_before = backend.state().created_total;

    let m2 = start(&backend, &store, pool("a", 6, 6, 10));
    m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let leases = m2.leases();
    let ids: BTreeSet<&str> = leases.iter().map(|l| l.lease_id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([l1.lease_id.as_str(), l2.lease_id.as_str()])
    );
    let again = m2.lease(&l1.lease_id).unwrap();
    assert_eq!(again.container_id, l1.container_id);
    assert_eq!(again.owner.as_deref(), Some("alice"));
    let renewed = m2.lease(&l2.lease_id).unwrap();
    assert!(
        renewed.ttl_remaining_s > 250,
        "the renewal survived: {renewed:?}"
    );
    assert!(m2.exec(&l1.lease_id, Default::default()).await.is_ok());

    let live = backend.live().clone();
    for id in &lendable {
        let leased = id == &l1.container_id || id == &l2.container_id;
        assert_eq!(
            live.contains(id),
            leased,
            "lendable {id}: kept only when leased"
        );
    }
    let stats = m2.pool_stats("a").unwrap();
    let adopted = stats.counters.adopted_total;
    let unlent_ready = before.len() - lendable.len();
    assert_eq!(
        adopted as usize, unlent_ready,
        "every unlent container adopted"
    );
    assert!(adopted > 0);
    // Only what was destroyed was recreated.
    let created_after = backend.state().created_total - creates_before;
    assert_eq!(created_after as usize, 6 - unlent_ready);
    assert_eq!(stats.counts.leased, 2);
    assert_eq!(stats.counts.ready, 6);
    // Nothing on the "engine" the daemon does not account for.
    assert_eq!(live.len(), 8, "{live:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lease_not_yet_committed_costs_its_container_never_a_second_client() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(&backend, &store, pool("a", 3, 3, 6));
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    run_for(Duration::from_millis(200)).await;
    let commits = store.commits();
    // Acquired and crashed before the next commit: the lease record never reached the store.
    let lost = m1.acquire(acquire("carol")).await.unwrap();
    crash(&m1).await;
    assert_eq!(store.commits(), commits, "no commit in between");
    assert!(!store.snapshot().leases.contains_key(&lost.lease_id));
    assert!(store.snapshot().lendable.contains_key(&lost.container_id));

    let m2 = start(&backend, &store, pool("a", 3, 3, 6));
    m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert!(m2.lease(&lost.lease_id).is_err());
    assert!(
        !backend.live().contains(&lost.container_id),
        "the maybe-lent container must be destroyed"
    );
    // Every later acquire gets a different container.
    for _ in 0..3 {
        let l = m2.acquire(acquire("dave")).await.unwrap();
        assert_ne!(l.container_id, lost.container_id);
    }
}

#[tokio::test(start_paused = true)]
async fn a_moved_image_or_changed_spec_is_not_adopted_but_leases_stay() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(&backend, &store, pool("a", 3, 3, 6));
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m1.acquire(acquire("erin")).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    crash(&m1).await;
    let old: BTreeSet<String> = backend.live().clone();

    let mut changed = pool("a", 3, 3, 6);
    changed.spec.env.insert("NEW".into(), "1".into());
    let m2 = start(&backend, &store, changed);
    m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert!(
        m2.lease(&l.lease_id).is_ok(),
        "a lease outlives a spec change"
    );
    let live = backend.live().clone();
    let kept: Vec<_> = old.intersection(&live).collect();
    assert_eq!(
        kept,
        vec![&l.container_id],
        "only the leased container is kept"
    );
    assert_eq!(m2.pool_stats("a").unwrap().counters.adopted_total, 0);
    crash(&m2).await;

    // Same spec, but the image tag moved: nothing ready is adopted either.
    backend.state().image_id = "sha256:two".into();
    let m3 = start(&backend, &store, pool("a", 3, 3, 6));
    m3.warm_up("a", Duration::from_secs(10)).await.unwrap();
    assert_eq!(m3.pool_stats("a").unwrap().counters.adopted_total, 0);
    assert!(m3.lease(&l.lease_id).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_lends_nothing_it_could_not_record() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    store.fail.store(true, Ordering::Release);
    let mut cfg = pool("a", 2, 2, 4);
    cfg.wait_timeout = Duration::from_secs(1);
    let m = start(&backend, &store, cfg);
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let err = m.acquire(acquire("frank")).await.unwrap_err();
    assert!(err.to_string().contains("no container"), "{err}");
    assert!(m.leases().is_empty());
    // The store recovers: the next commit makes containers lendable again.
    store.fail.store(false, Ordering::Release);
    run_for(Duration::from_secs(1)).await;
    let l = m.acquire(acquire("frank")).await.unwrap();
    run_for(Duration::from_millis(100)).await;
    assert!(store.snapshot().leases.contains_key(&l.lease_id));
    assert!(m.persist_stats().unwrap().commit_failures > 0);
}

#[tokio::test(start_paused = true)]
async fn a_clean_shutdown_clears_the_store() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m = start(&backend, &store, pool("a", 2, 2, 4));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    m.acquire(acquire("gina")).await.unwrap();
    run_for(Duration::from_millis(200)).await;
    assert!(!store.snapshot().leases.is_empty());
    m.shutdown(Duration::from_secs(5)).await;
    assert_eq!(store.snapshot(), Default::default());
    assert!(backend.live().is_empty());
}

#[tokio::test(start_paused = true)]
async fn after_a_burst_the_lendable_set_covers_the_next_one() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m = start(&backend, &store, pool("a", 8, 8, 20));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    run_for(Duration::from_millis(200)).await;
    let at_rest = m.pool_stats("a").unwrap().lendable;
    assert_eq!(at_rest, 2, "at rest only the floor is lendable");

    // A burst of 8: two are lendable at once, the rest wait for one urgent commit.
    let burst = |m: Arc<Manager<FakeBackend>>| async move {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let m = m.clone();
            tasks.push(tokio::spawn(
                async move { m.acquire(acquire("burst")).await },
            ));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap().unwrap().lease_id);
        }
        for id in &ids {
            m.release(id).unwrap();
        }
    };
    let commits = store.commits();
    burst(m.clone()).await;
    assert!(store.commits() > commits);
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    run_for(Duration::from_millis(200)).await;
    // The peak is remembered: the whole next burst is lendable before it arrives.
    assert_eq!(m.pool_stats("a").unwrap().lendable, 8);
}

#[tokio::test(start_paused = true)]
async fn keep_on_shutdown_hands_leases_and_unlent_containers_to_the_next_start() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let cfg = ManagerConfig {
        keep_on_shutdown: true,
        ..ManagerConfig::default()
    };
    let with_keep = |store: &Arc<MemoryStore>| {
        let store: Arc<dyn LeaseStore> = store.clone();
        let m = Manager::with_store(
            cfg.clone(),
            vec![(pool("a", 4, 4, 8), policies(BuiltinExhaustion::Wait))],
            backend.clone(),
            Some(store),
        );
        m.start();
        m
    };
    let m1 = with_keep(&store);
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m1.acquire(acquire("hana")).await.unwrap();
    // Renewed just before the signal: the final flush keeps it, with no commit interval to wait.
    m1.renew(&l.lease_id, Duration::from_secs(500)).unwrap();
    let report = m1.shutdown(Duration::from_secs(5)).await;
    assert!(report.kept >= 2, "{report:?}");
    let live = backend.live().clone();
    assert!(
        live.contains(&l.container_id),
        "the leased container was removed"
    );
    assert_eq!(live.len(), report.kept, "kept = leased + unlent ready");

    let m2 = with_keep(&store);
    m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let again = m2.lease(&l.lease_id).unwrap();
    assert!(again.ttl_remaining_s > 400, "{again:?}");
    assert_eq!(
        m2.pool_stats("a").unwrap().counters.adopted_total as usize,
        report.kept - 1
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_asked_for_before_its_engine_is_reconciled_is_not_yet_known_never_unknown() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(&backend, &store, pool("a", 1, 1, 4));
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m1.acquire(acquire("alice")).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    crash(&m1).await;

    // The engine does not answer when the daemon comes back: the lease is in the store, not
    // yet in the table. A client asking now is told to come back, not that its lease is gone.
    backend.state().down = true;
    let m2 = start(&backend, &store, pool("a", 1, 1, 4));
    run_for(Duration::from_secs(3)).await;
    for r in [
        m2.lease(&l.lease_id).map(|_| ()),
        m2.renew(&l.lease_id, Duration::from_secs(60)).map(|_| ()),
        m2.exec(&l.lease_id, Default::default()).await.map(|_| ()),
    ] {
        match r {
            Err(LeaseError::NotRestoredYet { lease, engines }) => {
                assert_eq!(lease, l.lease_id);
                assert!(!engines.is_empty());
            }
            other => panic!("expected NotRestoredYet, got {other:?}"),
        }
    }
    // A release asked for now is refused the same way (the lease is not dropped unseen).
    assert!(matches!(
        m2.release(&l.lease_id),
        Err(LeaseError::NotRestoredYet { .. })
    ));
    // Once the engine answers and is reconciled, the lease is back; an ID that never existed
    // is then unknown.
    backend.state().down = false;
    run_for(Duration::from_secs(10)).await;
    assert_eq!(m2.lease(&l.lease_id).unwrap().container_id, l.container_id);
    assert!(matches!(
        m2.lease("never-was"),
        Err(LeaseError::UnknownLease(_))
    ));
}

/// A reload that removes a pool while the startup reconcile awaits (here: the baseline of a
/// container it chose to re-adopt, whose agent stalled until the daemon's deadline) must not
/// put that container in the removed pool's books. The removed pool, empty, is no longer listed
/// by then, so nothing ever removed the container from those books: its cap slot leaked (the
/// sweep found the container unaccounted and removed it as an orphan, freeing only the slot it
/// counted itself). Seed 1739 of the fault simulation.
#[tokio::test(start_paused = true)]
async fn a_pool_removed_while_the_reconcile_awaits_adopts_nothing() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let mut cfg = pool("a", 1, 1, 4);
    cfg.reuse = Some(ReuseConfig {
        max_uses: 2,
        reset: vec![],
        verify: vec![],
        timeout: Duration::from_secs(5),
        allowed_changes: vec![],
    });
    let m1 = start(&backend, &Arc::new(MemoryStore::default()), cfg.clone());
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    crash(&m1).await;
    let left = backend.live();
    assert_eq!(left.len(), 1, "one ready container left: {left:?}");
    // Its agent stalls: reading its baseline hangs until the daemon's deadline.
    for c in backend.state().containers.values_mut() {
        c.agent = Agent::Stalled(tokio::time::Instant::now());
    }

    // The store is lost: the container was never lent, so the reconcile re-adopts it.
    let m2 = start(&backend, &Arc::new(MemoryStore::default()), cfg);
    run_for(Duration::from_secs(1)).await;
    assert!(!m2.reconciled(), "the reconcile is still waiting");
    let report = m2.reconfigure(vec![]);
    assert_eq!(report.removed, vec!["a".to_string()]);
    assert!(
        m2.accounted().is_empty(),
        "the removed pool held nothing, so it is no longer listed"
    );

    // The baseline's deadline ends the wait; the reconcile applies what it chose; the sweep runs.
    run_for(Duration::from_secs(300)).await;
    assert!(
        backend.live().is_empty(),
        "the leftover container is removed"
    );
    assert!(m2.accounted().is_empty(), "{:?}", m2.accounted());
    assert_eq!(
        m2.containers_counted(),
        0,
        "the cap counts only what the books and the engine hold"
    );
}
