//! A warm acquire hands out a running, labelled, hardened container from the pool, and the
//! pool refills behind it.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use warmpool_e2e::{Daemon, docker, pool_yaml};

#[tokio::test]
async fn warm_acquire_gives_a_labelled_hardened_container() {
    let d = Daemon::start(&[pool_yaml(
        "bb",
        "min_ready: 2\nmax_ready: 2\nmax_total: 6\nmemory: 64m\npids_limit: 64",
    )])
    .await;
    d.warm_up("bb").await;
    let lease = d.acquire(json!({"pool": "bb", "ttl_s": 120})).await;
    assert_eq!(lease["source"], "pool");
    assert_eq!(lease["pool"], "bb");
    assert!(lease["acquire_ms"].as_f64().is_some());
    let cid = lease["container_id"].as_str().unwrap();

    let fmt = "{{.State.Running}}|{{index .Config.Labels \"warmpool.managed\"}}|{{index .Config.Labels \"warmpool.host\"}}|\
               {{index .Config.Labels \"warmpool.pool\"}}|{{index .Config.Labels \"warmpool.spec\"}}|{{.HostConfig.Init}}|\
               {{.HostConfig.CapDrop}}|{{.HostConfig.SecurityOpt}}|{{.HostConfig.PidsLimit}}|{{.HostConfig.Memory}}|{{.HostConfig.NetworkMode}}|\
               {{.Config.Entrypoint}}|{{.HostConfig.LogConfig.Type}}|{{index .Config.Labels \"warmpool.exec\"}}";
    let inspect = docker(&["inspect", "--format", fmt, cid]);
    let f: Vec<&str> = inspect.split('|').collect();
    assert_eq!(f[0], "true", "{inspect}");
    assert_eq!(f[1], "true");
    assert_eq!(f[2], d.host_id);
    assert_eq!(f[3], "bb");
    assert_eq!(f[4].len(), 16, "spec hash: {inspect}");
    // The agent is the container's init (it reaps orphans and passes signals on), its
    // stdio is its channel, which the engine must not log.
    assert_eq!(
        f[5], "false",
        "the agent is init, not docker-init: {inspect}"
    );
    assert_eq!(f[6], "[ALL]");
    assert_eq!(f[7], "[no-new-privileges:true]");
    assert_eq!(f[8], "64");
    assert_eq!(f[9], (64u64 << 20).to_string());
    assert_eq!(f[10], "none");
    assert_eq!(f[11], "[/.warmpool/agent]", "{inspect}");
    assert_eq!(f[12], "none", "no log of the channel: {inspect}");
    assert_eq!(f[13], "agent");

    // The pool refills to its target behind the acquire.
    d.wait_pool("bb", Duration::from_secs(30), |p| {
        p["counts"]["ready"] == 2 && p["counts"]["leased"] == 1
    })
    .await;
    let (st, _, listed) = d.call(Method::GET, "/v1/leases", None).await;
    assert_eq!(st, 200);
    assert_eq!(listed["leases"][0]["lease_id"], lease["lease_id"]);
    let p = d.pool("bb").await;
    assert_eq!(p["acquires"]["pool"], 1);
    assert_eq!(p["acquires"]["hit_rate"], 1.0);
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("warmpool_acquire_duration_seconds_count{pool=\"bb\",source=\"warm\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmpool_acquires_total{pool=\"bb\",source=\"warm\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_engine_pool_keeps_docker_init() {
    let d = Daemon::start(&[pool_yaml("en", "min_ready: 1\nmax_ready: 1\nexec: engine")]).await;
    d.warm_up("en").await;
    let lease = d.acquire(json!({"pool": "en"})).await;
    let cid = lease["container_id"].as_str().unwrap();
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.Init}}|{{.Config.Entrypoint}}|{{.HostConfig.LogConfig.Type}}",
        cid,
    ]);
    assert_eq!(inspect.trim(), "true|[]|json-file", "{inspect}");
}
