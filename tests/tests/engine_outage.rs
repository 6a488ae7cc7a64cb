//! The engine becomes unreachable while the daemon runs: readiness drops, acquires fail fast
//! with 503 and a clear message, nothing panics or storms; when the engine returns the daemon
//! refills by itself and open leases work again.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, EngineProxy, pool_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_reported_and_survived() {
    let proxy = EngineProxy::start().await;
    let docker = format!("docker:\n  endpoint: {}\n", proxy.endpoint());
    let d = Daemon::start_with(
        &[pool_yaml("eo", "min_ready: 2\nmax_ready: 2\nmax_total: 6")],
        &docker,
        &[],
    )
    .await;
    d.warm_up("eo").await;
    let lease = d.acquire(json!({"pool": "eo"})).await;
    let id = lease["lease_id"].as_str().unwrap().to_string();

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, _, body) = d.call(Method::GET, "/readyz", None).await;
        if st == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Acquires fail fast with 503 and the reason, rather than hanging on the engine.
    let t0 = Instant::now();
    let (st, headers, err) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "eo"})))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "engine_unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "acquire took {:?} during the outage",
        t0.elapsed()
    );
    let p = d.pool("eo").await;
    assert_eq!(p["status"], "engine_down", "{p}");
    // Hundreds of refusals a second must not write a warning each: at most one a second.
    let before = d.log().matches("request failed").count();
    let t0 = Instant::now();
    for _ in 0..300 {
        let (st, _, _) = d
            .call(Method::POST, "/v1/leases", Some(json!({"pool": "eo"})))
            .await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    }
    let lines = d.log().matches("request failed").count() - before;
    let secs = t0.elapsed().as_secs() as usize + 1;
    assert!(
        lines <= secs + 1,
        "{lines} warnings for 300 refusals in {secs} s: repeated warnings are not rate-limited"
    );
    // Stay down a while: the loops back off instead of spinning, and the breaker is not blamed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = d.pool("eo").await;
    assert_eq!(
        p["creates"]["consecutive_failures"], 0,
        "an outage tripped the create breaker: {p}"
    );

    proxy.restore();
    d.warm_up("eo").await;
    let (st, _, _) = d.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK);
    // The lease opened before the outage still works.
    let out = d.exec(&id, json!({"cmd": ["echo", "back"]})).await;
    assert_eq!(out["stdout"], "back\n");
    assert!(
        d.log().contains("container engine unreachable"),
        "the outage was not logged"
    );
    assert!(!d.log().contains("panicked"));
}
