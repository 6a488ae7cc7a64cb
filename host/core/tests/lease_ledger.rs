//! Each tenant's lease time, as the lease table tells a ledger (issue 24): a lease takes its
//! time left as it enters the table and gives back what it did not use as it leaves, however it
//! leaves; a renew pays for its change under the table's lock; and an acquire dropped while its
//! lease is being set up (the client hung up) ends that lease instead of leaving it to its TTL.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use warmpool_core::{
    AcquireRequest, BuiltinExhaustion, LeaseLedger, LeaseSetup, Manager, ManagerConfig,
};
use warmpool_fake::FakeBackend;

/// Every call the table makes, as (tenant, +opened / -closed seconds).
#[derive(Default)]
struct Book(Mutex<Vec<(String, i64)>>);

impl LeaseLedger for Book {
    fn opened(&self, tenant: &str, left: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((tenant.into(), left.as_secs() as i64));
    }
    fn closed(&self, tenant: &str, left: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((tenant.into(), -(left.as_secs() as i64)));
    }
}

impl Book {
    fn calls(&self) -> Vec<(String, i64)> {
        self.0.lock().unwrap().clone()
    }
}

async fn started(reuse: bool) -> (Arc<Manager<FakeBackend>>, Arc<FakeBackend>, Arc<Book>) {
    let mut p = pool("p", 2, 2, 4);
    p.max_ttl = Duration::from_secs(1000);
    if reuse {
        p.reuse = Some(warmpool_core::ReuseConfig {
            max_uses: 5,
            reset: vec![vec!["true".into()]],
            verify: vec![vec!["true".into()]],
            timeout: Duration::from_secs(5),
            allowed_changes: vec![],
        });
    }
    let (m, b) = manager(
        ManagerConfig::default(),
        vec![(p, policies(BuiltinExhaustion::Fail))],
    );
    let book = Arc::new(Book::default());
    m.set_lease_ledger(book.clone());
    m.warm_up("p", Duration::from_secs(10)).await.unwrap();
    (m, b, book)
}

fn req(tenant: Option<&str>, ttl: u64) -> AcquireRequest {
    AcquireRequest {
        pool: "p".into(),
        ttl: Some(Duration::from_secs(ttl)),
        tenant: tenant.map(Into::into),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_takes_its_time_and_gives_back_what_it_did_not_use() {
    let (m, _b, book) = started(false).await;
    let l = m.acquire(req(Some("a"), 300)).await.unwrap();
    // Leases of no tenant are nobody's account.
    let free = m.acquire(req(None, 300)).await.unwrap();
    run_for(Duration::from_secs(100)).await;
    m.release(&l.lease_id).unwrap();
    m.release(&free.lease_id).unwrap();
    assert_eq!(book.calls(), [("a".into(), 300), ("a".into(), -200)]);
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_used_all_it_took() {
    let (m, _b, book) = started(false).await;
    m.acquire(req(Some("a"), 60)).await.unwrap();
    run_for(Duration::from_secs(90)).await;
    assert!(m.leases().is_empty());
    assert_eq!(book.calls(), [("a".into(), 60), ("a".into(), 0)]);
}

#[tokio::test(start_paused = true)]
async fn a_renew_pays_for_its_change_under_the_tables_lock() {
    let (m, _b, book) = started(false).await;
    let l = m.acquire(req(Some("a"), 100)).await.unwrap();
    run_for(Duration::from_secs(40)).await;
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    // Asked past the pool's max_ttl: the change paid for is to max_ttl.
    let renewed = m
        .renew_with(&l.lease_id, Duration::from_secs(5000), |t, had, will| {
            *s.lock().unwrap() = Some((t.map(str::to_string), had, will));
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some((
            Some("a".into()),
            Duration::from_secs(60),
            Duration::from_secs(1000)
        ))
    );
    assert_eq!(renewed.ttl_remaining_s, 1000);
    // Refused: the lease keeps its expiry.
    let refused = m
        .renew_with(&l.lease_id, Duration::from_secs(10), |_, _, _| Err("no"))
        .unwrap();
    assert_eq!(refused.unwrap_err(), "no");
    assert_eq!(m.lease(&l.lease_id).unwrap().ttl_remaining_s, 1000);
    m.release(&l.lease_id).unwrap();
    assert_eq!(book.calls(), [("a".into(), 100), ("a".into(), -1000)]);
}

#[tokio::test(start_paused = true)]
async fn a_release_for_reuse_gives_back_the_unused_time() {
    let (m, _b, book) = started(true).await;
    let l = m.acquire(req(Some("a"), 500)).await.unwrap();
    run_for(Duration::from_secs(10)).await;
    m.release_for_reuse(&l.lease_id).await.unwrap();
    assert_eq!(book.calls(), [("a".into(), 500), ("a".into(), -490)]);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_dropped_during_its_set_up_ends_its_lease() {
    let (m, b, book) = started(false).await;
    let before: Vec<String> = b.state().containers.keys().cloned().collect();
    assert_eq!(before.len(), 2);
    {
        let mut w = b.state();
        w.faults.hang = 1.0;
        w.faults.hang_endless = 1.0;
    }
    let mut r = req(Some("a"), 600);
    r.setup = Some(Arc::new(LeaseSetup {
        env: [("K".to_string(), "v".to_string())].into(),
        ..Default::default()
    }));
    // The client gives up a second in, while the engine still sets the lease up.
    let got = tokio::time::timeout(Duration::from_secs(1), m.acquire(r)).await;
    assert!(
        got.is_err(),
        "the set-up hangs: the acquire is still waiting"
    );
    {
        let mut w = b.state();
        w.faults.hang = 0.0;
        w.faults.hang_endless = 0.0;
    }
    // Its lease is gone at once, given back to its tenant, and never lent again.
    assert!(m.leases().is_empty(), "{:?}", m.leases());
    assert_eq!(m.tenant_leases("a"), 0);
    let calls = book.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], ("a".into(), 600));
    assert!(calls[1].1 <= -598, "{calls:?}");
    // Its container is removed (the other warm one stays).
    run_for(Duration::from_secs(30)).await;
    let counts = m.pool_stats("p").unwrap().counts;
    assert_eq!((counts.leased, counts.removing), (0, 0), "{counts:?}");
    let left: Vec<String> = before
        .iter()
        .filter(|id| b.state().containers.contains_key(*id))
        .cloned()
        .collect();
    assert_eq!(left.len(), 1, "of {before:?}, {left:?} are on the engine");
}
