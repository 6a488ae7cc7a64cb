//! A ready container that fails its health probe is removed and replaced.

use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, docker, pool_yaml};

#[tokio::test]
async fn a_failing_probe_replaces_the_container() {
    let d = Daemon::start(&[pool_yaml(
        "hp",
        "min_ready: 2\nmax_ready: 2\nhealth: { cmd: \"test ! -e /tmp/sick\", interval: 500ms, timeout: 2s }",
    )])
    .await;
    d.warm_up("hp").await;
    let victim = containers_of(&d.host_id)[0].clone();
    docker(&["exec", &victim, "touch", "/tmp/sick"]);
    d.wait_pool("hp", Duration::from_secs(20), |p| {
        p["counters"]["unhealthy_total"] == 1 && p["counts"]["ready"] == 2
    })
    .await;
    assert!(
        !containers_of(&d.host_id).contains(&victim),
        "the sick container was kept"
    );
    for _ in 0..2 {
        let l = d.acquire(json!({"pool": "hp"})).await;
        assert_ne!(l["container_id"].as_str().unwrap(), victim);
    }
}
