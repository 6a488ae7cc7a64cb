//! The control supervisor, without Docker: reloads through the inbox answer their asker,
//! a rejected file keeps the old config serving, an attempt that panics is reported and the
//! next one works, and the supervisor's liveness is what /readyz reads. The reload plan's
//! restart settings and spec changes reach the answer, and a reload asked for during a burst of
//! plugin changes is applied with them, once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use warmpool::control::supervisor::Supervisor;
use warmpool::control::{Control, Inbox, Source};
use warmpool_config::Config;
use warmpool_core::Manager;
use warmpool_fake::FakeBackend;
use warmpool_plugin_host::{Limits, PluginHost};

const ONE_POOL: &str = "server: {host_id: sup}\npools:\n  a: {image: busybox, min_ready: 1}\n";
const TWO_POOLS: &str = "server: {host_id: sup}\npools:\n  a: {image: busybox, min_ready: 2, max_ready: 2}\n  b: {image: busybox}\n";

struct Rig {
    dir: tempfile::TempDir,
    manager: Arc<Manager<FakeBackend>>,
    host: Arc<PluginHost>,
}

fn rig() -> (Rig, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warmpool.yaml"), ONE_POOL).unwrap();
    let cfg = warmpool_config::load(&dir.path().join("warmpool.yaml")).unwrap();
    let host = PluginHost::new(Limits::default(), None).unwrap();
    let pools = cfg
        .pools
        .iter()
        .map(|p| (p.pool.clone(), warmpool::policies::policies(p, &host)))
        .collect();
    let manager = Manager::new(
        cfg.manager.clone(),
        pools,
        Arc::new(FakeBackend::new(Duration::from_millis(10))),
    );
    manager.start();
    (Rig { dir, manager, host }, cfg)
}

fn path(r: &Rig) -> std::path::PathBuf {
    r.dir.path().join("warmpool.yaml")
}

async fn ask(inbox: &Inbox) -> Result<warmpool::control::ReloadSummary, String> {
    let (tx, rx) = oneshot::channel();
    assert!(
        inbox
            .send(Control::Reload {
                source: Source::Admin,
                reply: Some(tx)
            })
            .await
    );
    rx.await.expect("the supervisor answers")
}

#[tokio::test]
async fn reloads_answer_their_asker_and_a_bad_file_keeps_the_old_config() {
    let (r, cfg) = rig();
    let mut sup = Supervisor::new(
        &path(&r),
        cfg,
        r.manager.clone(),
        r.host.clone(),
        Box::new(|p: &Path| warmpool_config::load(p)),
        None,
    );
    let (inbox, mut rx) = Inbox::new();
    let task = tokio::spawn(async move {
        let why = sup.run(&mut rx).await;
        (why, sup.config().pools.len())
    });

    std::fs::write(path(&r), TWO_POOLS).unwrap();
    let s = ask(&inbox).await.unwrap();
    assert_eq!(s.added, vec!["b".to_string()]);
    assert_eq!(s.changed, vec!["a".to_string()]);
    assert_eq!(r.manager.pool_names(), vec!["a", "b"]);

    std::fs::write(path(&r), "pools: {a: {image: busybox, min_ready: lots}}\n").unwrap();
    let err = ask(&inbox).await.unwrap_err();
    assert!(err.contains("pools.a.min_ready"), "{err}");
    assert_eq!(
        r.manager.pool_names(),
        vec!["a", "b"],
        "the old config serves"
    );

    assert!(inbox.send(Control::Shutdown("SIGTERM")).await);
    let (why, pools) = task.await.unwrap();
    assert_eq!(why, "SIGTERM");
    assert_eq!(pools, 2);
}

#[tokio::test]
async fn a_reload_that_panics_is_reported_and_the_next_one_works() {
    let (r, cfg) = rig();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let mut sup = Supervisor::new(
        &path(&r),
        cfg,
        r.manager.clone(),
        r.host.clone(),
        Box::new(move |p: &Path| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the loader blew up");
            }
            warmpool_config::load(p)
        }),
        None,
    );
    let alive = sup.alive();
    let mut events = r.manager.subscribe();
    let (inbox, mut rx) = Inbox::new();
    let task = tokio::spawn(async move { sup.run(&mut rx).await });

    std::fs::write(path(&r), TWO_POOLS).unwrap();
    let err = ask(&inbox).await.unwrap_err();
    assert!(err.contains("the loader blew up"), "{err}");
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let ev = events.recv().await.unwrap();
            if ev.kind == "reload" {
                return ev;
            }
        }
    })
    .await
    .expect("a reload event");
    assert!(ev.reason.unwrap().contains("the loader blew up"));
    assert!(alive.load(Ordering::Acquire), "the supervisor survived");

    // Every later reload works: nothing was silently disabled.
    let s = ask(&inbox).await.unwrap();
    assert_eq!(s.added, vec!["b".to_string()]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    drop(inbox);
    assert_eq!(task.await.unwrap(), "inbox closed");
    assert!(
        !alive.load(Ordering::Acquire),
        "a stopped supervisor says so"
    );
}

#[tokio::test]
async fn requests_in_a_burst_are_applied_once() {
    let (r, cfg) = rig();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let mut sup = Supervisor::new(
        &path(&r),
        cfg,
        r.manager.clone(),
        r.host.clone(),
        Box::new(move |p: &Path| {
            c.fetch_add(1, Ordering::SeqCst);
            warmpool_config::load(p)
        }),
        None,
    );
    let (inbox, mut rx) = Inbox::new();
    let task = tokio::spawn(async move { sup.run(&mut rx).await });
    for _ in 0..10 {
        assert!(inbox.offer(Control::Reload {
            source: Source::File,
            reply: None
        }));
    }
    let _ = ask(&inbox).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "an editor's burst of events is one reload"
    );
    assert!(inbox.send(Control::Shutdown("SIGINT")).await);
    assert_eq!(task.await.unwrap(), "SIGINT");
}

#[tokio::test]
async fn the_plan_names_restart_settings_and_flags_a_spec_change() {
    let (r, cfg) = rig();
    let mut sup = Supervisor::new(
        &path(&r),
        cfg,
        r.manager.clone(),
        r.host.clone(),
        Box::new(|p: &Path| warmpool_config::load(p)),
        None,
    );
    let (inbox, mut rx) = Inbox::new();
    let task = tokio::spawn(async move { sup.run(&mut rx).await });

    // A restart setting alone: named, and no pool touched.
    std::fs::write(
        path(&r),
        "server: {host_id: sup, listen: 127.0.0.1:7171}\npools:\n  a: {image: busybox, min_ready: 1}\n",
    )
    .unwrap();
    let s = ask(&inbox).await.unwrap();
    assert_eq!(s.restart_only, vec!["server.listen".to_string()]);
    assert!(s.added.is_empty() && s.removed.is_empty() && s.changed.is_empty());

    // A new image: the pool changes and its containers of the old spec drain. The listener is
    // still the one the daemon started with, so it is named again.
    std::fs::write(
        path(&r),
        "server: {host_id: sup, listen: 127.0.0.1:7171}\npools:\n  a: {image: busybox2, min_ready: 1}\n",
    )
    .unwrap();
    let s = ask(&inbox).await.unwrap();
    assert_eq!(s.changed, vec!["a".to_string()]);
    assert_eq!(s.respec, vec!["a".to_string()]);

    assert!(inbox.send(Control::Shutdown("SIGTERM")).await);
    assert_eq!(task.await.unwrap(), "SIGTERM");
}

#[tokio::test]
async fn a_reload_after_plugin_changes_is_applied_with_them() {
    let (r, cfg) = rig();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let mut sup = Supervisor::new(
        &path(&r),
        cfg,
        r.manager.clone(),
        r.host.clone(),
        Box::new(move |p: &Path| {
            c.fetch_add(1, Ordering::SeqCst);
            warmpool_config::load(p)
        }),
        None,
    );
    let (inbox, mut rx) = Inbox::new();
    let task = tokio::spawn(async move { sup.run(&mut rx).await });
    assert!(inbox.offer(Control::PluginChanged(vec![
        r.dir.path().join("no-slot-holds-this.wasm")
    ])));
    std::fs::write(path(&r), TWO_POOLS).unwrap();
    let s = ask(&inbox).await.unwrap();
    assert_eq!(s.added, vec!["b".to_string()]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(inbox.send(Control::Shutdown("SIGINT")).await);
    assert_eq!(task.await.unwrap(), "SIGINT");
}
