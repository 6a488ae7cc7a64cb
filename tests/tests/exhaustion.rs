//! An empty pool: `cold` creates on demand, `fail` answers 429 with Retry-After, `wait` waits
//! up to its deadline and is served when a container frees up.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn cold_fallback_creates_a_container_for_the_request() {
    let d = Daemon::start(&[pool_yaml(
        "cold",
        "min_ready: 0\nmax_ready: 1\nmax_total: 3\nexhaustion: { strategy: cold }",
    )])
    .await;
    let lease = d.acquire(json!({"pool": "cold"})).await;
    assert_eq!(lease["source"], "cold");
    let out = d
        .exec(
            lease["lease_id"].as_str().unwrap(),
            json!({"cmd": ["echo", "cold"]}),
        )
        .await;
    assert_eq!(out["stdout"], "cold\n");
    assert_eq!(d.pool("cold").await["acquires"]["cold"], 1);
}

#[tokio::test]
async fn fail_answers_429_with_retry_after() {
    let d = Daemon::start(&[pool_yaml(
        "ff",
        "min_ready: 1\nmax_ready: 1\nmax_total: 1\nexhaustion: { strategy: fail }",
    )])
    .await;
    d.warm_up("ff").await;
    d.acquire(json!({"pool": "ff"})).await;
    let (st, headers, err) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "ff"})))
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert_eq!(err["error"]["code"], "pool_exhausted");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
}

#[tokio::test]
async fn wait_honours_its_deadline_then_is_served_when_a_container_frees() {
    let d = Daemon::start(&[pool_yaml("ww", "min_ready: 1\nmax_ready: 1\nmax_total: 1\nexhaustion: { strategy: wait, wait_timeout: 20s }")]).await;
    d.warm_up("ww").await;
    let first = d.acquire(json!({"pool": "ww"})).await;

    // max_total 1 is taken: a 700 ms wait runs out, and says so.
    let t0 = Instant::now();
    let (st, headers, err) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "ww", "wait_ms": 700})),
        )
        .await;
    let waited = t0.elapsed();
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        waited >= Duration::from_millis(700),
        "gave up early: {waited:?}"
    );

    // A longer wait is served once the first lease ends and the pool refills.
    let id = first["lease_id"].as_str().unwrap().to_string();
    let waiter = {
        let url = d.url.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/leases"))
                .json(&json!({"pool": "ww", "wait_ms": 15_000}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let resp = waiter.await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let lease: serde_json::Value = resp.json().await.unwrap();
    assert_ne!(
        lease["container_id"], first["container_id"],
        "a released container was handed out again"
    );
}
