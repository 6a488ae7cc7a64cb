//! A restart for an upgrade loses no session: with `keep_on_shutdown`, SIGTERM leaves the leased
//! containers and the never-lent ready ones running and flushes the store; the next start
//! re-attaches the leases (files, expiry) and re-adopts the ready containers.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, pool_yaml};

#[tokio::test]
async fn sigterm_with_keep_on_shutdown_hands_everything_to_the_next_start() {
    let mut d = Daemon::start_with(
        &[pool_yaml(
            "g",
            "min_ready: 4\nmax_ready: 4\nmax_total: 8\nworkdir: /work",
        )],
        "  state_dir: {STATE_DIR}\n  keep_on_shutdown: true\n",
        &[],
    )
    .await;
    d.warm_up("g").await;
    let l = d
        .acquire(json!({"pool": "g", "owner": "upgrade-test"}))
        .await;
    let id = l["lease_id"].as_str().unwrap().to_string();
    let out = d
        .exec(&id, json!({"cmd": ["sh", "-c", "echo kept > /work/state"]}))
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    d.wait_pool("g", Duration::from_secs(30), |p| {
        p["counts"]["ready"] == 4 && p["counts"]["creating"] == 0
    })
    .await;
    let (_, _, before) = d.call(Method::GET, &format!("/v1/leases/{id}"), None).await;

    let (status, took) = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let left: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
    assert!(
        left.contains(l["container_id"].as_str().unwrap()),
        "the leased container was removed at shutdown"
    );
    assert!(left.len() >= 2, "nothing unlent was kept: {left:?}");
    assert!(d.log().contains("kept for the next start"), "{}", d.log());

    d.restart().await;
    let (st, _, after) = d.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    assert_eq!(st, StatusCode::OK, "{after}\n{}", d.log());
    assert_eq!(after["container_id"], l["container_id"]);
    assert_eq!(after["owner"], "upgrade-test");
    assert_eq!(
        after["expires_at"].as_str().unwrap()[..19],
        before["expires_at"].as_str().unwrap()[..19]
    );
    let out = d.exec(&id, json!({"cmd": ["cat", "/work/state"]})).await;
    assert_eq!(out["stdout"], "kept\n");
    let p = d
        .wait_pool("g", Duration::from_secs(30), |p| {
            p["counts"]["ready"] == 4
                && p["counts"]["creating"] == 0
                && p["counts"]["removing"] == 0
        })
        .await;
    let adopted = p["counters"]["adopted_total"].as_u64().unwrap();
    assert_eq!(adopted as usize, left.len() - 1, "{p:#}");
    let now: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
    assert!(left.is_subset(&now), "a kept container was not taken back");
    assert_eq!(now.len(), 5, "4 ready + 1 leased: {now:?}");
    eprintln!(
        "SIGTERM with keep_on_shutdown: {:.2} s; {} kept, {adopted} re-adopted",
        took.as_secs_f64(),
        left.len()
    );
}
