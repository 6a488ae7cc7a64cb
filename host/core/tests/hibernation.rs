//! Lease hibernation on the in-memory engine, under paused time: a suspended lease's container is
//! stopped with its processes and files in a checkpoint, counted as suspended (and still
//! against the caps), and comes back on resume or on the next call; a pool that refuses calls
//! on a suspended lease says so; an idle lease is suspended on its own; an engine that cannot
//! checkpoint says why and the lease runs on; a failed suspend or resume leaves the lease
//! running, suspended, or ended with its container removed; release destroys a suspended
//! container, never reuses it; and a suspended lease survives a crash.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{
    BuiltinExhaustion, ExecRequest, HibernationConfig, LeaseError, Manager, ManagerConfig,
    OnSuspended, PoolConfig, ReuseConfig,
};
use warmpool_fake::{FakeBackend, MemoryStore};

fn exec(cmd: &[&str]) -> ExecRequest {
    ExecRequest {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn hib_pool(on: OnSuspended, idle: Option<Duration>) -> PoolConfig {
    PoolConfig {
        hibernation: HibernationConfig {
            on_suspended: on,
            suspend_after_idle: idle,
        },
        ..pool("a", 1, 2, 4)
    }
}

fn start(
    backend: &Arc<FakeBackend>,
    store: Option<&Arc<MemoryStore>>,
    cfg: PoolConfig,
) -> Arc<Manager<FakeBackend>> {
    let store = store.map(|s| s.clone() as Arc<dyn LeaseStore>);
    let m = Manager::with_store(
        ManagerConfig::default(),
        vec![(cfg, policies(BuiltinExhaustion::Cold))],
        backend.clone(),
        store,
    );
    m.start();
    m
}

#[tokio::test(start_paused = true)]
async fn a_suspended_lease_keeps_its_processes_and_comes_back_on_the_next_call() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = start(&backend, None, hib_pool(OnSuspended::Resume, None));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    m.exec(&l.lease_id, exec(&["spawn", "counter"]))
        .await
        .unwrap();
    m.exec(&l.lease_id, exec(&["write", "/work/x", "kept"]))
        .await
        .unwrap();

    let s = m.suspend(&l.lease_id).await.unwrap();
    assert_eq!(s.state, "suspended");
    assert!(s.suspended_at.is_some());
    run_for(Duration::from_millis(200)).await;
    {
        let w = backend.state();
        let c = &w.containers[&l.container_id];
        assert!(!c.running && c.checkpoint, "stopped, with its checkpoint");
    }
    let stats = m.pool_stats("a").unwrap();
    assert_eq!((stats.counts.suspended, stats.counts.leased), (1, 0));
    assert_eq!(stats.counters.suspends_total, 1);
    // The engine's report of the stop is no death.
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "suspended");
    // Suspending again answers as it is.
    assert_eq!(m.suspend(&l.lease_id).await.unwrap().state, "suspended");

    // A call resumes it first.
    m.exec(&l.lease_id, exec(&["true"])).await.unwrap();
    let info = m.lease(&l.lease_id).unwrap();
    assert_eq!(info.state, "active");
    assert!(info.suspended_at.is_none());
    let w = backend.state();
    let c = &w.containers[&l.container_id];
    assert!(c.running && !c.checkpoint);
    assert!(
        c.procs.values().any(|p| p.cmd == "counter"),
        "{:?}",
        c.procs
    );
    assert_eq!(
        c.files.get("/work/x").map(Vec::as_slice),
        Some(&b"kept"[..])
    );
    drop(w);
    let stats = m.pool_stats("a").unwrap();
    assert_eq!((stats.counts.suspended, stats.counts.leased), (1 - 1, 1));
    assert_eq!(stats.counters.resumes_total, 1);
    assert_eq!(stats.hibernation.suspend.count, 1);
    assert_eq!(stats.hibernation.resume.count, 1);
}

#[tokio::test(start_paused = true)]
async fn a_pool_that_refuses_answers_suspended_until_an_explicit_resume() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = start(&backend, None, hib_pool(OnSuspended::Refuse, None));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    m.suspend(&l.lease_id).await.unwrap();
    let e = m.exec(&l.lease_id, exec(&["true"])).await.unwrap_err();
    assert!(matches!(e, LeaseError::Suspended { .. }), "{e}");
    assert!(matches!(
        m.get_file(&l.lease_id, "/etc/hostname").await,
        Err(LeaseError::Suspended { .. })
    ));
    assert_eq!(m.resume(&l.lease_id).await.unwrap().state, "active");
    m.exec(&l.lease_id, exec(&["true"])).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_lease_is_suspended_and_its_ttl_runs_on() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = start(
        &backend,
        None,
        hib_pool(OnSuspended::Resume, Some(Duration::from_secs(5))),
    );
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    run_for(Duration::from_secs(3)).await;
    m.exec(&l.lease_id, exec(&["true"])).await.unwrap();
    run_for(Duration::from_secs(3)).await;
    assert_eq!(
        m.lease(&l.lease_id).unwrap().state,
        "active",
        "used 3 s ago"
    );
    run_for(Duration::from_secs(4)).await;
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "suspended");
    // The TTL runs on while suspended, and a renew works.
    let before = m.lease(&l.lease_id).unwrap().ttl_remaining_s;
    run_for(Duration::from_secs(10)).await;
    let after = m.lease(&l.lease_id).unwrap().ttl_remaining_s;
    assert!(after + 9 <= before, "{before} -> {after}");
    let renewed = m
        .renew(&l.lease_id, Duration::from_secs(3000))
        .unwrap()
        .ttl_remaining_s;
    assert!(renewed > after, "{after} -> {renewed}");
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "suspended");
}

#[tokio::test(start_paused = true)]
async fn an_engine_without_checkpoints_says_why_and_the_lease_runs_on() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    backend.state().no_checkpoint = Some("the engine is not in experimental mode".into());
    let m = start(&backend, None, hib_pool(OnSuspended::Resume, None));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    match m.suspend(&l.lease_id).await {
        Err(LeaseError::CannotSuspend { reason, .. }) => {
            assert!(reason.contains("experimental"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "active");
    m.exec(&l.lease_id, exec(&["true"])).await.unwrap();
    assert_eq!(m.pool_stats("a").unwrap().counts.suspended, 0);
}

#[tokio::test(start_paused = true)]
async fn release_destroys_a_suspended_container_and_never_reuses_it() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let cfg = PoolConfig {
        reuse: Some(ReuseConfig {
            max_uses: 10,
            reset: vec![],
            verify: vec![],
            timeout: Duration::from_secs(10),
            allowed_changes: vec![],
        }),
        ..hib_pool(OnSuspended::Resume, None)
    };
    let m = start(&backend, None, cfg);
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    m.suspend(&l.lease_id).await.unwrap();
    let out = m.release_for_reuse(&l.lease_id).await.unwrap();
    assert!(!out.reused, "{out:?}");
    assert!(out.reason.unwrap().contains("suspended"));
    run_for(Duration::from_secs(2)).await;
    assert!(!backend.live().contains(&l.container_id), "destroyed");
    // A lease suspended once and resumed is not reused either.
    let l2 = m.acquire(request("a")).await.unwrap();
    m.suspend(&l2.lease_id).await.unwrap();
    m.resume(&l2.lease_id).await.unwrap();
    let out = m.release_for_reuse(&l2.lease_id).await.unwrap();
    assert!(!out.reused, "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_suspend_or_resume_settles_on_what_the_engine_holds() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = start(&backend, None, hib_pool(OnSuspended::Resume, None));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let (mut running, mut suspended, mut ended) = (0, 0, 0);
    backend.state().faults.fail_hibernate = 1.0;
    for _ in 0..12 {
        let l = m.acquire(request("a")).await.unwrap();
        let _ = m.suspend(&l.lease_id).await;
        match m.lease(&l.lease_id) {
            Ok(i) if i.state == "active" => {
                running += 1;
                assert!(backend.state().containers[&l.container_id].running);
            }
            Ok(i) if i.state == "suspended" => {
                suspended += 1;
                let w = backend.state();
                let c = &w.containers[&l.container_id];
                assert!(!c.running && c.checkpoint);
            }
            Ok(i) => panic!("{i:?}"),
            Err(LeaseError::UnknownLease(_)) => ended += 1,
            Err(e) => panic!("{e}"),
        }
        let _ = m.release(&l.lease_id);
        run_for(Duration::from_secs(1)).await;
    }
    assert!(
        running > 0 && suspended > 0 && ended > 0,
        "{running} {suspended} {ended}"
    );
    run_for(Duration::from_secs(5)).await;
    // Nothing is left on the engine but the pool's own, and the books agree.
    let stats = m.pool_stats("a").unwrap();
    assert_eq!(stats.counts.total() as usize, backend.live().len());
    assert_eq!(stats.counts.suspended + stats.counts.leased, 0);
    assert!(stats.counters.hibernation_losses > 0);
}

#[tokio::test(start_paused = true)]
async fn an_engine_down_mid_suspend_leaves_the_lease_suspended_until_a_resume_finds_out() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let m = start(&backend, None, hib_pool(OnSuspended::Resume, None));
    m.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m.acquire(request("a")).await.unwrap();
    // Every engine call hangs past its client timeout: the suspend's answer never comes.
    {
        let mut w = backend.state();
        w.faults.hang = 1.0;
        w.faults.hang_for = Duration::from_secs(1);
    }
    let _ = m.suspend(&l.lease_id).await;
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "suspended");
    backend.state().faults.hang = 0.0;
    // Once the engine answers again (its monitor sees it up), the container never stopped:
    // the resume finds it running.
    run_for(Duration::from_secs(10)).await;
    m.exec(&l.lease_id, exec(&["true"])).await.unwrap();
    assert_eq!(m.lease(&l.lease_id).unwrap().state, "active");
    let stats = m.pool_stats("a").unwrap();
    assert_eq!((stats.counts.suspended, stats.counts.leased), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_suspended_lease_survives_a_crash_and_resumes_on_demand() {
    let backend = Arc::new(FakeBackend::new(CREATE));
    let store = Arc::new(MemoryStore::default());
    let m1 = start(&backend, Some(&store), hib_pool(OnSuspended::Resume, None));
    m1.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let l = m1.acquire(request("a")).await.unwrap();
    m1.renew(&l.lease_id, Duration::from_secs(3600)).unwrap();
    m1.exec(&l.lease_id, exec(&["spawn", "counter"]))
        .await
        .unwrap();
    m1.suspend(&l.lease_id).await.unwrap();
    run_for(Duration::from_secs(2)).await;
    m1.cancel_token().cancel();
    m1.settle_commits().await;
    run_for(Duration::from_millis(100)).await;

    let m2 = start(&backend, Some(&store), hib_pool(OnSuspended::Resume, None));
    m2.warm_up("a", Duration::from_secs(10)).await.unwrap();
    let again = m2.lease(&l.lease_id).unwrap();
    assert_eq!(again.state, "suspended", "{again:?}");
    assert_eq!(again.container_id, l.container_id);
    // Several sweeps later it is still there: a stopped suspended container is not dead.
    run_for(Duration::from_secs(120)).await;
    assert_eq!(m2.lease(&l.lease_id).unwrap().state, "suspended");
    assert_eq!(m2.pool_stats("a").unwrap().counts.suspended, 1);
    m2.exec(&l.lease_id, exec(&["true"])).await.unwrap();
    let w = backend.state();
    let c = &w.containers[&l.container_id];
    assert!(c.running && c.procs.values().any(|p| p.cmd == "counter"));
}
