//! Reproduction of issue 9, finding 4: a pool whose containers exit right after they start, or a
//! few seconds later, must back off and say why, not create in a loop, and no acquire may ever
//! get such a container. On the old daemon `exit 3` made 432 creates in 40 s, the pool said `ok`,
//! and a cold acquire answered 201 with a container that had already exited.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, eventually, pool_yaml};

async fn degraded(d: &Daemon, pool: &str) -> Value {
    eventually(
        Duration::from_secs(90),
        "the pool reports degraded",
        || async {
            let p = d.pool(pool).await;
            (p["status"] == "degraded").then_some(p)
        },
    )
    .await
}

/// Failed creates of `pool` over `window`, once it is degraded: the breaker's half-open trials.
async fn failures_over(d: &Daemon, pool: &str, window: Duration) -> u64 {
    let before = d.pool(pool).await["creates"]["failures"].as_u64().unwrap();
    tokio::time::sleep(window).await;
    d.pool(pool).await["creates"]["failures"].as_u64().unwrap() - before
}

#[tokio::test]
async fn a_container_that_exits_at_once_backs_off_and_is_never_handed_out() {
    let d = Daemon::start(&[pool_yaml(
        "ex",
        "min_ready: 2\nmax_ready: 2\nmax_total: 6\ncmd: [sh, -c, \"echo boom; exit 3\"]",
    )])
    .await;
    // Before and after the breaker opens, an acquire never gets a container that exited.
    for _ in 0..3 {
        let (st, _, body) = d
            .call(
                Method::POST,
                "/v1/leases",
                Some(json!({"pool": "ex", "wait_ms": 2000})),
            )
            .await;
        assert_ne!(
            st,
            StatusCode::CREATED,
            "handed out a container that exits at once: {body}"
        );
    }
    let p = degraded(&d, "ex").await;
    let err = p["creates"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("exit code 3") && err.contains("boom"), "{p}");
    let n = failures_over(&d, "ex", Duration::from_secs(10)).await;
    assert!(n <= 3, "{n} creates in 10 s with the breaker open: a storm");
    let (st, headers, body) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "ex"})))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "pool_degraded");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_container_that_dies_a_few_seconds_later_backs_off_too() {
    let d = Daemon::start(&[pool_yaml(
        "late",
        "min_ready: 1\nmax_ready: 1\nmax_total: 4\ncmd: [sh, -c, \"sleep 2; echo late; exit 4\"]\nexhaustion: { strategy: fail }",
    )])
    .await;
    let p = degraded(&d, "late").await;
    let err = p["creates"]["last_error"].as_str().unwrap_or("");
    assert!(
        err.contains("probation") && err.contains("exit code 4"),
        "{p}"
    );
    assert!(p["counters"]["died_young"].as_u64().unwrap() >= 5, "{p}");
    let n = failures_over(&d, "late", Duration::from_secs(10)).await;
    assert!(
        n <= 3,
        "{n} replacements in 10 s with the breaker open: a storm"
    );
}
