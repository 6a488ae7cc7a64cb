//! Reproduction of issue 9, finding 1: a container released while the engine is unreachable
//! must stay counted (against every cap) until the engine confirms it is gone, and must never
//! reach another client: not while the daemon runs, not after `kill -9`, not after a graceful
//! restart that keeps containers. On the old daemon the removal gave up after five attempts,
//! the engine then held five containers under `max_containers: 4`, and the restart re-adopted
//! the first client's container with its secret inside.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
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

async fn released_during_an_outage(keep_on_shutdown: bool) {
    let proxy = EngineProxy::start().await;
    let server = format!(
        "  state_dir: {{STATE_DIR}}\n  keep_on_shutdown: {keep_on_shutdown}\ndocker:\n  endpoint: {}\n",
        proxy.endpoint()
    );
    let mut d = Daemon::start_setup(
        &[pool_yaml(
            "or",
            "min_ready: 1\nmax_ready: 2\nmax_total: 4\nworkdir: /work\nexhaustion: { strategy: wait, wait_timeout: 20s }",
        )],
        Setup {
            server: &server,
            limits: "  max_containers: 4\n  max_concurrent_creates: 4\n",
            ..Setup::default()
        },
    )
    .await;
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

    proxy.cut();
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{a_lease}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The engine cannot confirm the removal: the container stays counted as removing.
    eventually(
        Duration::from_secs(10),
        "the released container counted as removing",
        || async {
            let p = d.pool("or").await;
            (p["counts"]["removing"].as_u64().unwrap_or(0) >= 1).then_some(())
        },
    )
    .await;
    // Longer than the old daemon kept trying before it forgot the container.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let p = d.pool("or").await;
    assert!(
        p["counts"]["removing"].as_u64().unwrap_or(0) >= 1,
        "the container whose removal never succeeded is no longer counted: {p}"
    );

    proxy.restore();
    // Fill the pool to its max_total while watching the engine: never above max_containers.
    let watch = PeakWatch::start(&d.host_id);
    d.warm_up("or").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(d.acquire(json!({"pool": "or"})).await);
    }
    // max_total 4: three leased and one ready, with the released container gone.
    d.wait_pool("or", Duration::from_secs(60), |p| {
        p["counts"]["leased"] == 3 && p["counts"]["ready"] == 1
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "the released container removed",
        || async { (!containers_of(&d.host_id).contains(&a_container)).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = watch.stop();
    assert!(
        peak <= 4,
        "the engine held {peak} containers with max_containers: 4"
    );

    // A restart of either kind never hands the first client's container to anyone.
    if keep_on_shutdown {
        let (status, _) = d.terminate(Duration::from_secs(30));
        assert!(status.success());
    } else {
        d.kill9();
    }
    d.restart().await;
    for l in &held {
        let id = l["lease_id"].as_str().unwrap();
        let _ = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
    }
    for _ in 0..3 {
        let b = d.acquire(json!({"pool": "or", "owner": "client-b"})).await;
        assert_ne!(
            b["container_id"].as_str().unwrap(),
            a_container,
            "client A's container reached another client"
        );
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
    }
    assert!(!containers_of(&d.host_id).contains(&a_container));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_in_an_outage_then_kill9() {
    released_during_an_outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_in_an_outage_then_a_graceful_restart_that_keeps_containers() {
    released_during_an_outage(true).await;
}
