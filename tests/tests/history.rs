//! `GET /v1/history` against the real binary: the daemon samples its pools itself (here every
//! 300 ms, `WARMPOOL_HISTORY_INTERVAL_MS`), a lease shows as `leased`, and each acquire is
//! counted, warm or cold, in the interval it was served, as the pool's own counters count it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, binary, eventually, pool_yaml};

async fn samples(d: &Daemon, pool: &str) -> Vec<Value> {
    let (st, _, v) = d
        .call(Method::GET, &format!("/v1/history?pool={pool}"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["interval_ms"], 300, "{v}");
    assert_eq!(v["pools"][0]["name"], pool, "{v}");
    v["pools"][0]["samples"].as_array().unwrap().clone()
}

fn sum(s: &[Value], field: &str) -> u64 {
    s.iter().map(|x| x[field].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn the_daemon_samples_its_pools_and_counts_each_acquire() {
    let d = Daemon::start_with(
        &[pool_yaml(
            "hi",
            "min_ready: 1\nmax_ready: 1\nmax_total: 4\nexhaustion: { strategy: cold }",
        )],
        "",
        &[("WARMPOOL_HISTORY_INTERVAL_MS", "300")],
    )
    .await;
    d.warm_up("hi").await;
    // Samples appear by themselves, an interval apart, with the pool's ready container.
    let before = eventually(Duration::from_secs(10), "three samples", || async {
        let s = samples(&d, "hi").await;
        (s.len() >= 3 && s.last().unwrap()["ready"] == 1).then_some(s)
    })
    .await;
    assert_eq!(sum(&before, "acquires"), 0, "{before:?}");
    let at = |x: &Value| humantime::parse_rfc3339(x["at"].as_str().unwrap()).unwrap();
    for w in before.windows(2) {
        let gap = at(&w[1]).duration_since(at(&w[0])).unwrap();
        assert!(
            gap >= Duration::from_millis(250) && gap < Duration::from_secs(3),
            "{gap:?}"
        );
    }

    // Two leases: the pool's one container (warm), then one created for the second.
    let a = d.acquire(json!({"pool": "hi", "ttl_s": 120})).await;
    let b = d.acquire(json!({"pool": "hi", "ttl_s": 120})).await;
    assert_eq!(a["source"], "pool");
    let s = eventually(
        Duration::from_secs(10),
        "both acquires and leases sampled",
        || async {
            let s = samples(&d, "hi").await;
            (sum(&s, "acquires") == 2 && s.last().unwrap()["leased"] == 2).then_some(s)
        },
    )
    .await;
    // Counted as the pool's own counters count them, and in one sample's figures.
    let p = d.pool("hi").await;
    assert_eq!(
        sum(&s, "warm"),
        p["acquires"]["pool"].as_u64().unwrap(),
        "{p}"
    );
    assert_eq!(
        sum(&s, "cold"),
        p["acquires"]["cold"].as_u64().unwrap(),
        "{p}"
    );
    assert_eq!(sum(&s, "warm") + sum(&s, "cold"), 2);
    let with: Vec<&Value> = s.iter().filter(|x| x["acquires"] != 0).collect();
    for x in &with {
        let rate = x["warm"].as_f64().unwrap() / x["acquires"].as_f64().unwrap();
        assert_eq!(x["hit_rate"].as_f64(), Some(rate), "{x}");
        let (p50, p95) = (
            x["latency_ms_p50"].as_f64().unwrap(),
            x["latency_ms_p95"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p95 >= p50, "{x}");
    }
    assert!(
        s.iter()
            .filter(|x| x["acquires"] == 0)
            .all(|x| x["hit_rate"].is_null() && x["latency_ms_p50"].is_null())
    );

    // Released: the next samples show no lease.
    for l in [&a, &b] {
        let id = l["lease_id"].as_str().unwrap();
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    eventually(Duration::from_secs(10), "leased back to 0", || async {
        (samples(&d, "hi").await.last().unwrap()["leased"] == 0).then_some(())
    })
    .await;

    // Every pool without a filter; an unknown one is a 404.
    let (st, _, all) = d.call(Method::GET, "/v1/history", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all["capacity"], 360);
    assert_eq!(all["pools"].as_array().unwrap().len(), 1, "{all}");
    let (st, _, err) = d.call(Method::GET, "/v1/history?pool=nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "unknown_pool");
    assert!(d.log().contains("WARMPOOL_HISTORY_INTERVAL_MS"));

    // An interval out of bounds stops a start before anything runs, naming the variable (the
    // same config: it fails before the port it would find taken).
    let out = std::process::Command::new(binary())
        .args(["serve", "-c"])
        .arg(d.config_path())
        .env("WARMPOOL_HISTORY_INTERVAL_MS", "5")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("WARMPOOL_HISTORY_INTERVAL_MS=\"5\""),
        "{text}"
    );
}
