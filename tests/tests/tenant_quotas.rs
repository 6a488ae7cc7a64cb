//! Tenant quotas (issue 24) under a storm of 100 concurrent acquires each: `max_leases`,
//! `acquires_per_s` and `lease_seconds_per_hour` each hold, and every refusal is a clean 429
//! `quota_exceeded` that names the quota and says when to retry.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, eventually, pool_yaml};

const OPS: &str = "tok-quota-ops-0123456";

const TENANTS: &str = "  tenants:
    - name: ops
      token_env: E2E_OPS
      admin: true
    - name: few
      token_env: E2E_FEW
      quotas: { max_leases: 3 }
    - name: slow
      token_env: E2E_SLOW
      quotas: { acquires_per_s: 5 }
    - name: thrifty
      token_env: E2E_THRIFTY
      quotas: { lease_seconds_per_hour: 300 }
";

/// 100 acquires at once as `token` (60 s leases); each answer's status, `Retry-After` and body.
async fn storm(d: &Daemon, token: &str) -> Vec<(StatusCode, Option<String>, Value)> {
    let calls = (0..100).map(|_| async {
        let (st, h, v) = d
            .call_as(
                token,
                Method::POST,
                "/v1/leases",
                Some(json!({"pool": "q", "ttl_s": 60, "wait_ms": 0})),
            )
            .await;
        let retry = h
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (st, retry, v)
    });
    join_all(calls).await
}

/// Check every answer is a 201 or a clean 429 of `quota`; the 201s' lease IDs.
fn split(answers: &[(StatusCode, Option<String>, Value)], quota: &str) -> Vec<String> {
    let mut ok = Vec::new();
    for (st, retry, v) in answers {
        match *st {
            StatusCode::CREATED => ok.push(v["lease_id"].as_str().unwrap().to_string()),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
                assert_eq!(v["error"]["quota"], quota, "{v}");
                assert!(
                    v["error"]["message"].as_str().unwrap().starts_with(quota),
                    "{v}"
                );
                let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
                assert!(secs >= 1, "{secs}");
            }
            other => panic!("{quota}: {other} {v}"),
        }
    }
    ok
}

async fn release_all(d: &Daemon, token: &str, ids: &[String]) {
    for id in ids {
        let (st, _, v) = d
            .call_as(token, Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    }
}

#[tokio::test]
async fn each_quota_holds_under_a_storm_of_100_concurrent_acquires() {
    let d = Daemon::start_with(
        &[pool_yaml(
            "q",
            "min_ready: 8\nmax_ready: 8\nexhaustion: { strategy: fail }",
        )],
        TENANTS,
        &[
            ("E2E_OPS", OPS),
            ("E2E_FEW", "tok-few-0123456789ab"),
            ("E2E_SLOW", "tok-slow-0123456789ab"),
            ("E2E_THRIFTY", "tok-thrifty-0123456789"),
        ],
    )
    .await;
    let ready = || async {
        let (_, _, v) = d.call_as(OPS, Method::GET, "/v1/pools/q", None).await;
        (v["counts"]["ready"].as_u64() >= Some(8)).then_some(())
    };
    eventually(Duration::from_secs(90), "8 ready", ready).await;

    // max_leases: 3. Exactly three leases, however the 100 race.
    let answers = storm(&d, "tok-few-0123456789ab").await;
    let few = split(&answers, "max_leases");
    assert_eq!(few.len(), 3, "max_leases 3");
    let (_, _, v) = d
        .call_as("tok-few-0123456789ab", Method::GET, "/v1/leases", None)
        .await;
    assert_eq!(v["leases"].as_array().unwrap().len(), 3);
    release_all(&d, "tok-few-0123456789ab", &few).await;
    // With the leases gone, room again.
    eventually(Duration::from_secs(90), "8 ready", ready).await;
    let (st, _, v) = d
        .call_as(
            "tok-few-0123456789ab",
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "q"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    release_all(
        &d,
        "tok-few-0123456789ab",
        &[v["lease_id"].as_str().unwrap().to_string()],
    )
    .await;

    // acquires_per_s: 5, a bucket of one second: five, plus what refilled while the storm ran.
    eventually(Duration::from_secs(90), "8 ready", ready).await;
    let t0 = Instant::now();
    let answers = storm(&d, "tok-slow-0123456789ab").await;
    let took = t0.elapsed().as_secs_f64();
    let slow = split(&answers, "acquires_per_s");
    let bound = 5 + (5.0 * took).ceil() as usize;
    assert!(
        (5..=bound).contains(&slow.len()),
        "{} acquires in {took:.2} s (bound {bound})",
        slow.len()
    );
    release_all(&d, "tok-slow-0123456789ab", &slow).await;

    // lease_seconds_per_hour: 300 and 60 s leases: five of them.
    eventually(Duration::from_secs(90), "8 ready", ready).await;
    let answers = storm(&d, "tok-thrifty-0123456789").await;
    let thrifty = split(&answers, "lease_seconds_per_hour");
    assert_eq!(thrifty.len(), 5);
    // A release gives back what the lease had left: one more fits.
    release_all(&d, "tok-thrifty-0123456789", &thrifty[..1]).await;
    let (st, _, v) = d
        .call_as(
            "tok-thrifty-0123456789",
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "q", "ttl_s": 50})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // A renewal past the budget is refused the same way, and the lease keeps its expiry.
    let id = v["lease_id"].as_str().unwrap();
    let (st, h, v) = d
        .call_as(
            "tok-thrifty-0123456789",
            Method::POST,
            &format!("/v1/leases/{id}/renew"),
            Some(json!({"ttl_s": 3000})),
        )
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["quota"], "lease_seconds_per_hour");
    assert!(h.get("retry-after").is_some());

    // What the tenants and the metrics say.
    let (_, _, v) = d.call_as(OPS, Method::GET, "/v1/tenants", None).await;
    let by_name = |n: &str| {
        v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("few")["rejections"]["max_leases"], 97);
    assert_eq!(
        by_name("slow")["rejections"]["acquires_per_s"],
        (100 - slow.len()) as u64
    );
    assert_eq!(
        by_name("thrifty")["rejections"]["lease_seconds_per_hour"],
        95 + 1
    );
    assert_eq!(by_name("thrifty")["leases"], 5);
    // A tenant sees itself alone.
    let (_, _, mine) = d
        .call_as("tok-few-0123456789ab", Method::GET, "/v1/tenants", None)
        .await;
    assert_eq!(mine["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(mine["tenants"][0]["name"], "few");
    let text = d.metrics_as(Some(OPS), None).await;
    assert!(
        text.contains("warmpool_tenant_rejections_total{tenant=\"few\",quota=\"max_leases\"} 97"),
        "{text}"
    );
    assert!(
        text.contains("warmpool_tenant_leases{tenant=\"thrifty\"} 5"),
        "{text}"
    );
}
