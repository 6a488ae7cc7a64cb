//! Reproduction of issue 9, finding 1: a container released while the engine is unreachable
//! must stay counted (against every cap) until the engine confirms it is gone, and must never
//! reach another client: not while the daemon runs, not after `kill -9` with the state store
//! lost, not after a graceful restart that keeps containers. On the old daemon the removal gave
//! up after five attempts, the engine then held five containers under `max_containers: 4`, and
//! the restart re-adopted the first client's container with its secret inside.
//!
//! The restarts happen while the released container is still on the engine (its removal could
//! not reach it), so the restarted daemon is the one that must decide not to lend it: the
//! engine-side mark (`<name>-leased`) is all that is left of its history once the store is gone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, EngineProxy, Setup, containers_of, eventually, pool_yaml};

const SECRET: &[u8] = b"SECRET-OF-CLIENT-A";

/// Counts a host id's containers on the engine every 50 ms, keeping the peak; stops when
/// stopped or dropped (a failing test must not leave the thread running).
struct PeakWatch {
    peak: Arc<AtomicUsize>,
    on: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakWatch {
    fn start(host: &str) -> Self {
        let (peak, on) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(true)),
        );
        let (p, o, host) = (peak.clone(), on.clone(), host.to_string());
        let thread = std::thread::spawn(move || {
            while o.load(Ordering::Acquire) {
                p.fetch_max(containers_of(&host).len(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            peak,
            on,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> usize {
        self.on.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Acquire)
    }
}

impl Drop for PeakWatch {
    fn drop(&mut self) {
        self.on.store(false, Ordering::Release);
    }
}

/// The pool of these tests: `max_total` 4 under `max_containers: 4`, acquires wait. `max_ready`
/// leaves a restart room to re-adopt client A's container, so only its history keeps it out.
fn pool() -> String {
    pool_yaml(
        "or",
        "min_ready: 1\nmax_ready: 3\nmax_total: 4\nworkdir: /work\nexhaustion: { strategy: wait, wait_timeout: 20s }",
    )
}

/// A daemon behind a cuttable engine proxy, persisting to a state store.
async fn daemon(proxy: &EngineProxy, keep_on_shutdown: bool) -> Daemon {
    let server = format!(
        "  state_dir: {{STATE_DIR}}\n  keep_on_shutdown: {keep_on_shutdown}\ndocker:\n  endpoint: {}\n",
        proxy.endpoint()
    );
    Daemon::start_setup(
        &[pool()],
        Setup {
            server: &server,
            limits: "  max_containers: 4\n  max_concurrent_creates: 4\n",
            ..Setup::default()
        },
    )
    .await
}

/// The engine's name for a container (without the leading `/`), or `None` once it is gone.
/// Asked of the engine itself, not through the proxy.
fn engine_name(id: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Name}}", id])
        .output()
        .expect("docker inspect");
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches('/')
            .to_string()
    })
}

/// Client A: a lease with a secret file in it. Returns (lease id, container id) once the
/// daemon's `-leased` mark is on the engine (the daemon sends it off the acquire path).
async fn client_a(d: &Daemon) -> (String, String) {
    d.warm_up("or").await;
    let a = d.acquire(json!({"pool": "or", "owner": "client-a"})).await;
    let (a_lease, a_container) = (
        a["lease_id"].as_str().unwrap().to_string(),
        a["container_id"].as_str().unwrap().to_string(),
    );
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{a_lease}/files/work/secret.txt"),
            SECRET.to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(10),
        "client A's container marked -leased on the engine",
        || async {
            engine_name(&a_container)
                .filter(|n| n.ends_with("-leased"))
                .map(|_| ())
        },
    )
    .await;
    (a_lease, a_container)
}

/// Cut the engine, then release client A: the daemon answers at once, and counts the container
/// as removing because the engine cannot confirm the removal.
async fn release_in_an_outage(d: &Daemon, proxy: &EngineProxy, a_lease: &str) {
    let ready = d.pool("or").await["counts"]["ready"].as_u64().unwrap();
    assert!(
        ready < 3,
        "{ready} ready: a restart would have no room to re-adopt client A's container"
    );
    proxy.cut();
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{a_lease}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(10),
        "the released container counted as removing",
        || async {
            let p = d.pool("or").await;
            (p["counts"]["removing"].as_u64().unwrap_or(0) >= 1).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_in_an_outage_stays_counted_until_the_engine_confirms_it_gone() {
    let proxy = EngineProxy::start().await;
    let d = daemon(&proxy, false).await;
    let (a_lease, a_container) = client_a(&d).await;
    release_in_an_outage(&d, &proxy, &a_lease).await;
    // Longer than the old daemon kept trying before it forgot the container.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let p = d.pool("or").await;
    assert!(
        p["counts"]["removing"].as_u64().unwrap_or(0) >= 1,
        "the container whose removal never succeeded is no longer counted: {p}"
    );
    assert!(
        engine_name(&a_container).is_some(),
        "the engine lost the container by itself: the outage proved nothing"
    );

    proxy.restore();
    // Fill the pool to its max_total while watching the engine: never above max_containers.
    let watch = PeakWatch::start(&d.host_id);
    d.warm_up("or").await;
    for _ in 0..3 {
        let b = d.acquire(json!({"pool": "or"})).await;
        assert_ne!(
            b["container_id"].as_str().unwrap(),
            a_container,
            "client A's container reached another client"
        );
    }
    // max_total 4: three leased and one ready, with the released container gone.
    d.wait_pool("or", Duration::from_secs(60), |p| {
        p["counts"]["leased"] == 3 && p["counts"]["ready"] == 1
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "the released container removed",
        || async { engine_name(&a_container).is_none().then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = watch.stop();
    assert!(
        peak <= 4,
        "the engine held {peak} containers with max_containers: 4"
    );
}

/// After the restart: acquire over and over, holding up to three leases at once (more than the
/// pool keeps ready, so every container the restart kept or re-adopted is handed out), and
/// check that no lease is client A's container, no container is handed out twice, and no lease
/// can read client A's secret. Then the restarted daemon removes client A's container.
async fn never_lent_after_the_restart(d: &Daemon, a_container: &str) {
    let mut handed_out = BTreeSet::new();
    for _ in 0..3 {
        let mut held: Vec<Value> = Vec::new();
        for _ in 0..3 {
            let b = d.acquire(json!({"pool": "or", "owner": "client-b"})).await;
            let cid = b["container_id"].as_str().unwrap().to_string();
            assert_ne!(
                cid,
                a_container,
                "client A's container reached another client after the restart\nlog:\n{}",
                d.log()
            );
            assert!(handed_out.insert(cid.clone()), "{cid} handed out twice");
            let (st, body) = d
                .raw(
                    Method::GET,
                    &format!(
                        "/v1/leases/{}/files/work/secret.txt",
                        b["lease_id"].as_str().unwrap()
                    ),
                    vec![],
                )
                .await;
            assert_ne!(body, SECRET, "client A's secret reached another client");
            assert_eq!(st, StatusCode::NOT_FOUND);
            held.push(b);
        }
        for l in &held {
            let id = l["lease_id"].as_str().unwrap();
            let (st, _, _) = d
                .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                .await;
            assert_eq!(st, StatusCode::NO_CONTENT);
        }
    }
    eventually(
        Duration::from_secs(30),
        "the restarted daemon removes client A's container",
        || async { engine_name(a_container).is_none().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_in_an_outage_then_kill9_and_a_lost_store_never_lends_it() {
    let proxy = EngineProxy::start().await;
    let mut d = daemon(&proxy, false).await;
    let (a_lease, a_container) = client_a(&d).await;
    release_in_an_outage(&d, &proxy, &a_lease).await;

    d.kill9();
    // Still on the engine, marked: the mark is all that says it was ever lent.
    let name = engine_name(&a_container).expect("client A's container left on the engine");
    assert!(
        name.ends_with("-leased"),
        "not marked on the engine: {name}"
    );
    let state = d.dir.path().join("state");
    assert!(state.is_dir(), "no state store at {}", state.display());
    std::fs::remove_dir_all(&state).unwrap();
    proxy.restore();
    assert!(engine_name(&a_container).is_some());

    d.restart().await;
    never_lent_after_the_restart(&d, &a_container).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_in_an_outage_then_a_graceful_restart_that_keeps_containers_never_lends_it() {
    let proxy = EngineProxy::start().await;
    let mut d = daemon(&proxy, true).await;
    let (a_lease, a_container) = client_a(&d).await;
    release_in_an_outage(&d, &proxy, &a_lease).await;

    // SIGTERM during the outage: the removal cannot land within the grace, the store is
    // flushed, and the next start finds the container.
    let (status, _) = d.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status:?}");
    let name = engine_name(&a_container).expect("client A's container left on the engine");
    assert!(
        name.ends_with("-leased"),
        "not marked on the engine: {name}"
    );
    proxy.restore();

    d.restart().await;
    never_lent_after_the_restart(&d, &a_container).await;
}
