//! Pool lifecycle against the real engine: setup commands gate readiness, a pool whose creates
//! keep failing opens its breaker instead of storming, old containers are recycled, and an idle
//! pool shrinks one container at a time.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, docker, pool_yaml};

#[tokio::test]
async fn setup_commands_run_before_a_container_is_ready() {
    let d = Daemon::start(&[pool_yaml(
        "st",
        "min_ready: 1\nmax_ready: 1\nsetup:\n  - \"echo prepared > /tmp/setup-marker\"\n  - [mkdir, -p, /work/cache]",
    )])
    .await;
    d.warm_up("st").await;
    let lease = d.acquire(json!({"pool": "st"})).await;
    let out = d
        .exec(
            lease["lease_id"].as_str().unwrap(),
            json!({"cmd": ["sh", "-c", "cat /tmp/setup-marker; test -d /work/cache"]}),
        )
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(out["stdout"], "prepared\n");
}

#[tokio::test]
async fn failing_creates_open_the_breaker_without_a_storm() {
    let d = Daemon::start(&[
        // No registry is reachable here: the pull fails at once, every time.
        "  missing:\n    image: warmpool-test/does-not-exist:nope\n    min_ready: 2\n    max_ready: 2\n".to_string(),
        pool_yaml("badsetup", "min_ready: 1\nmax_ready: 1\nsetup: [\"exit 9\"]"),
    ])
    .await;
    let p = d
        .wait_pool("missing", Duration::from_secs(30), |p| {
            p["status"] == "degraded"
        })
        .await;
    let err = p["creates"]["last_error"].as_str().unwrap();
    assert!(err.contains("warmpool-test/does-not-exist:nope"), "{err}");
    let p = d
        .wait_pool("badsetup", Duration::from_secs(30), |p| {
            p["status"] == "degraded"
        })
        .await;
    assert!(
        p["creates"]["last_error"]
            .as_str()
            .unwrap()
            .contains("exited 9"),
        "{p}"
    );
    // Back-off 0.5 s, 1 s, 2 s, …: a handful of attempts in 8 s, never a storm.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let failures = d.pool("missing").await["creates"]["failures"]
        .as_u64()
        .unwrap();
    assert!(
        failures <= 8,
        "{failures} create attempts: the breaker did not hold"
    );
    // Failed setups leave no container behind.
    assert!(
        containers_of(&d.host_id).is_empty(),
        "{:?}",
        containers_of(&d.host_id)
    );
    // An acquire on a degraded pool is refused with the reason, not queued behind a dead pool.
    let (st, headers, e) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "missing"})))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert_eq!(e["error"]["code"], "pool_degraded");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn old_containers_are_recycled_and_idle_pools_shrink() {
    let d = Daemon::start(&[
        pool_yaml("aged", "min_ready: 2\nmax_ready: 2\nlifecycle: { max_warm_age: 2s }"),
        pool_yaml("idle", "min_ready: 1\nmax_ready: 4\nmax_total: 10\nlifecycle: { idle_timeout: 2s }\nsizing: { cooldown: 1s }"),
    ])
    .await;
    d.warm_up("aged").await;
    let aged = |d: &Daemon| -> HashSet<String> {
        let host = format!("label=warmpool.host={}", d.host_id);
        docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &host,
            "--filter",
            "label=warmpool.pool=aged",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    };
    let first = aged(&d);
    assert_eq!(first.len(), 2);
    d.wait_pool("aged", Duration::from_secs(30), |p| {
        p["counters"]["recycled_total"].as_u64() >= Some(2) && p["counts"]["ready"] == 2
    })
    .await;
    // Recycling is one per tick: wait until both originals have been replaced.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while aged(&d).iter().any(|c| first.contains(c)) {
        assert!(
            std::time::Instant::now() < deadline,
            "original containers outlived max_warm_age"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A burst of 3 acquires raises the idle pool's target; with no acquires it shrinks back.
    d.warm_up("idle").await;
    for _ in 0..3 {
        let l = d.acquire(json!({"pool": "idle"})).await;
        d.call(
            Method::DELETE,
            &format!("/v1/leases/{}", l["lease_id"].as_str().unwrap()),
            None,
        )
        .await;
    }
    d.wait_pool("idle", Duration::from_secs(30), |p| {
        p["counts"]["ready"] == 4
    })
    .await;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = d.pool("idle").await["counts"]["ready"].as_u64().unwrap();
        if seen.last() != Some(&ready) {
            seen.push(ready);
        }
        if ready == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never shrank to min_ready: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in seen.windows(2) {
        assert!(
            w[0] <= w[1] + 1,
            "dropped more than one at a time: {seen:?}"
        );
    }
}
