//! Reproduction of issue 9, finding 2: with reuse on, the first lease's processes must not
//! survive into the next lease, nor its `/dev/shm`, whatever the pool's reset says. On the old
//! daemon a background loop started by the first client kept running and listing the next
//! client's files.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

const POOL: &str = r#"min_ready: 1
max_ready: 1
max_total: 1
workdir: /work
exhaustion: { strategy: wait, wait_timeout: 20s }
reuse: { enabled: true, max_uses: 5, reset: ["rm -rf /work/* /work/.[!.]* /tmp/* /tmp/.[!.]*"], verify: ["test -z \"$(ls -A /work)\" && test -z \"$(ls -A /tmp)\""] }"#;

async fn release_for_reuse(d: &Daemon, lease: &str) -> serde_json::Value {
    let (st, _, outcome) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{lease}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{outcome}");
    outcome
}

#[tokio::test]
async fn a_spy_loop_and_dev_shm_never_reach_the_next_client() {
    let d = Daemon::start(&[pool_yaml("rs", POOL)]).await;
    d.warm_up("rs").await;
    let one = d.acquire(json!({"pool": "rs"})).await;
    let id1 = one["lease_id"].as_str().unwrap();
    let out = d
        .exec(
            id1,
            json!({"cmd": ["sh", "-c", "(while true; do ls /tmp >> /dev/shm/spy; sleep 1; done) >/dev/null 2>&1 & echo x > /dev/shm/note; echo started"]}),
        )
        .await;
    assert_eq!(out["stdout"], "started\n", "{out}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outcome = release_for_reuse(&d, id1).await;
    assert_eq!(outcome["reused"], true, "{outcome}");

    let two = d.acquire(json!({"pool": "rs"})).await;
    assert_eq!(
        two["container_id"], one["container_id"],
        "expected the same container back"
    );
    let id2 = two["lease_id"].as_str().unwrap();
    d.exec(
        id2,
        json!({"cmd": ["sh", "-c", "echo private > /tmp/mine"]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ps = d.exec(id2, json!({"cmd": ["ps", "-o", "pid,args"]})).await;
    let ps = ps["stdout"].as_str().unwrap();
    assert!(
        !ps.contains("sleep 1") && !ps.contains("while"),
        "the first client's loop survived into the next lease:\n{ps}"
    );
    let shm = d.exec(id2, json!({"cmd": ["ls", "-A", "/dev/shm"]})).await;
    assert_eq!(shm["stdout"], "", "/dev/shm survived the reuse: {shm}");
}

#[tokio::test]
async fn what_a_client_leaves_outside_the_reset_destroys_the_container() {
    let d = Daemon::start(&[pool_yaml("rl", POOL)]).await;
    d.warm_up("rl").await;
    let one = d.acquire(json!({"pool": "rl"})).await;
    let id1 = one["lease_id"].as_str().unwrap();
    // The reset cleans /work and /tmp; this file is elsewhere.
    d.exec(
        id1,
        json!({"cmd": ["sh", "-c", "echo secret > /root/.history"]}),
    )
    .await;
    let outcome = release_for_reuse(&d, id1).await;
    assert_eq!(outcome["reused"], false, "{outcome}");
    assert!(
        outcome["reason"]
            .as_str()
            .unwrap()
            .contains("/root/.history"),
        "{outcome}"
    );
    let next = d.acquire(json!({"pool": "rl"})).await;
    assert_ne!(next["container_id"], one["container_id"]);
}
