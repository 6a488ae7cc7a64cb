//! A ready container killed behind the daemon's back is noticed, replaced, and never leased.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, docker, pool_yaml};

#[tokio::test]
async fn a_killed_ready_container_is_replaced_and_never_leased() {
    let d = Daemon::start(&[pool_yaml("kk", "min_ready: 3\nmax_ready: 3\nmax_total: 8\nexhaustion: { strategy: wait, wait_timeout: 20s }")]).await;
    d.warm_up("kk").await;
    let before: HashSet<String> = containers_of(&d.host_id).into_iter().collect();
    assert_eq!(before.len(), 3);
    let victim = before.iter().next().unwrap().clone();
    docker(&["kill", &victim]);

    // Noticed through the engine's events, removed, and refilled.
    d.wait_pool("kk", Duration::from_secs(20), |p| {
        p["counters"]["unhealthy_total"] == 1
            && p["counts"]["ready"] == 3
            && p["counts"]["unhealthy"] == 0
    })
    .await;
    // Lease everything that is ready: the dead one is never among them.
    for _ in 0..3 {
        let lease = d.acquire(json!({"pool": "kk"})).await;
        assert_ne!(
            lease["container_id"].as_str().unwrap(),
            victim,
            "a killed container was leased"
        );
        let out = d
            .exec(
                lease["lease_id"].as_str().unwrap(),
                json!({"cmd": ["true"]}),
            )
            .await;
        assert_eq!(out["exit_code"], 0);
    }
    assert!(
        !containers_of(&d.host_id).contains(&victim),
        "the killed container was not removed"
    );
}
