//! Reproduction of issue 9, finding 3: an exec that times out, or whose client goes away, must
//! not leave its processes running. On the old daemon `sleep 30 & sleep 30` with a one-second
//! timeout answered `timed_out: true` and both sleeps kept running.

use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, eventually, pool_yaml};

async fn processes(d: &Daemon, lease: &str, pattern: &str) -> usize {
    let ps = d.exec(lease, json!({"cmd": ["ps", "-o", "args"]})).await;
    ps["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| l.contains(pattern))
        .count()
}

#[tokio::test]
async fn a_timed_out_exec_leaves_no_process_behind() {
    let d = Daemon::start(&[pool_yaml("ek", "min_ready: 1")]).await;
    d.warm_up("ek").await;
    let lease = d.acquire(json!({"pool": "ek"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let out = d
        .exec(
            id,
            json!({"cmd": ["sh", "-c", "sleep 30 & sleep 30"], "timeout_ms": 1000}),
        )
        .await;
    assert_eq!(out["timed_out"], true, "{out}");
    assert_eq!(
        processes(&d, id, "sleep 30").await,
        0,
        "a timed-out exec's processes are still running"
    );
}

#[tokio::test]
async fn an_exec_whose_client_hangs_up_leaves_no_process_behind() {
    let d = Daemon::start(&[pool_yaml("ed", "min_ready: 1")]).await;
    d.warm_up("ed").await;
    let lease = d.acquire(json!({"pool": "ed"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let r = impatient
        .post(format!("{}/v1/leases/{id}/exec", d.url))
        .json(&json!({"cmd": ["sh", "-c", "sleep 31 & sleep 31"], "timeout_ms": 60000}))
        .send()
        .await;
    assert!(r.is_err(), "the client was to give up first: {r:?}");
    eventually(
        Duration::from_secs(15),
        "the abandoned exec's processes killed",
        || async { (processes(&d, id, "sleep 31").await == 0).then_some(()) },
    )
    .await;
}
