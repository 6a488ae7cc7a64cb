//! A state store that keeps failing (issue 9): nothing new is lent while it fails, the changes
//! waiting for it never outgrow the live state however much traffic goes by, and everything
//! lands once it works again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{AcquireRequest, BuiltinExhaustion, Manager, ManagerConfig, ReuseConfig};
use warmpool_fake::{FakeBackend, MemoryStore};

#[tokio::test(start_paused = true)]
async fn pending_changes_stay_bounded_while_the_store_fails() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let mut cfg = pool("so", 3, 3, 6);
    cfg.wait_timeout = Duration::from_millis(200);
    cfg.reuse = Some(ReuseConfig {
        max_uses: 1_000_000,
        reset: vec![vec!["true".into()]],
        verify: vec![vec!["true".into()]],
        timeout: Duration::from_secs(5),
        allowed_changes: vec![],
    });
    let m = Manager::with_store(
        ManagerConfig::default(),
        vec![(cfg, policies(BuiltinExhaustion::Wait))],
        backend,
        Some(store.clone() as Arc<dyn LeaseStore>),
    );
    m.start();
    m.warm_up("so", Duration::from_secs(10)).await.unwrap();
    run_for(Duration::from_secs(1)).await;
    store.set_failing(true);
    // Reuse keeps the lendable containers circulating: thousands of leases come and go.
    for i in 0..3000 {
        let l = m
            .acquire(AcquireRequest {
                pool: "so".into(),
                owner: Some(format!("c{i}")),
                ..Default::default()
            })
            .await
            .expect("lendable containers keep serving while the store fails");
        m.renew(&l.lease_id, Duration::from_secs(30)).unwrap();
        let out = m.release_for_reuse(&l.lease_id).await.unwrap();
        assert!(out.reused, "{out:?}");
    }
    let pending = m.persist_stats().unwrap().pending;
    assert!(
        pending <= 20,
        "{pending} changes wait for the store after 3000 leases; they must not pile up"
    );
    assert!(m.persist_stats().unwrap().commit_failures > 0);
    // The store recovers: what is live reaches it, what ended never does.
    store.set_failing(false);
    let l = m
        .acquire(AcquireRequest {
            pool: "so".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    run_for(Duration::from_secs(2)).await;
    let persisted = store.snapshot();
    assert_eq!(persisted.leases.len(), 1, "{:?}", persisted.leases.keys());
    assert!(persisted.leases.contains_key(&l.lease_id));
    assert_eq!(m.persist_stats().unwrap().pending, 0);
}
