//! A lease whose TTL runs out is ended and its container destroyed; renew extends it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, pool_yaml};

#[tokio::test]
async fn an_expired_lease_destroys_its_container() {
    let d = Daemon::start(&[pool_yaml(
        "ttl",
        "min_ready: 1\nmax_ready: 1\nmax_total: 4\nlease: { default_ttl: 2s, max_ttl: 30s }",
    )])
    .await;
    d.warm_up("ttl").await;
    let short = d.acquire(json!({"pool": "ttl"})).await;
    let cid = short["container_id"].as_str().unwrap().to_string();
    let renewed = d.acquire(json!({"pool": "ttl"})).await;
    let rid = renewed["lease_id"].as_str().unwrap();
    let (st, _, r) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{rid}/renew"),
            Some(json!({"ttl_s": 600})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["ttl_remaining_s"], 30, "renew is capped at max_ttl: {r}");

    d.wait_pool("ttl", Duration::from_secs(15), |p| {
        p["counters"]["expired_total"] == 1
    })
    .await;
    let (st, _, _) = d
        .call(
            Method::GET,
            &format!("/v1/leases/{}", short["lease_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while containers_of(&d.host_id).contains(&cid) {
        assert!(
            std::time::Instant::now() < deadline,
            "expired container {cid} still exists"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The renewed lease lives on.
    let (st, _, _) = d
        .call(Method::GET, &format!("/v1/leases/{rid}"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
}
