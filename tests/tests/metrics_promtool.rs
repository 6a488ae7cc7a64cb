//! `/metrics` of a real daemon passes `promtool check metrics` (Debian's `prometheus` package,
//! installed by scripts/python-env.sh), with warm, cold and rejected acquires counted in one
//! counter and histogram bounds that are round numbers. Prometheus itself, asking for
//! OpenMetrics, gets OpenMetrics.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: scripts/python-env.sh installs Debian's prometheus package");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_warm_cold_and_rejected_acquires_in_one_counter() {
    let d = Daemon::start(&[
        pool_yaml(
            "hot",
            "min_ready: 1\nmax_ready: 1\nmax_total: 1\nexhaustion: { strategy: fail }",
        ),
        pool_yaml(
            "chill",
            "min_ready: 0\nmax_ready: 1\nmax_total: 2\nexhaustion: { strategy: cold }",
        ),
    ])
    .await;
    d.warm_up("hot").await;
    d.acquire(json!({"pool": "hot"})).await;
    let (st, _, _) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "hot"})))
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let cold = d.acquire(json!({"pool": "chill"})).await;
    assert_eq!(cold["source"], "cold");

    let resp = reqwest::get(format!("{}/metrics", d.url)).await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = resp.text().await.unwrap();
    let (ok, said) = promtool_check(&text);
    assert!(
        ok,
        "promtool check metrics failed:\n{said}\n--- metrics ---\n{text}"
    );
    assert!(said.trim().is_empty(), "promtool warned:\n{said}");

    for line in [
        "warmpool_acquires_total{pool=\"hot\",source=\"warm\"} 1",
        "warmpool_acquires_total{pool=\"hot\",source=\"rejected\"} 1",
        "warmpool_acquires_total{pool=\"hot\",source=\"cold\"} 0",
        "warmpool_acquires_total{pool=\"chill\",source=\"cold\"} 1",
        "# HELP warmpool_acquires_total ",
        "# TYPE warmpool_acquires_total counter",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    // Every histogram bound is a round number: at most 2 significant digits.
    let bounds: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("warmpool_acquire_duration_seconds_bucket"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert!(bounds.len() >= 10, "{text}");
    for b in &bounds {
        if *b == "+Inf" {
            continue;
        }
        let v: f64 = b.parse().unwrap_or_else(|_| panic!("bucket bound {b}"));
        let sci = format!("{v:e}");
        let digits: String = sci
            .split('e')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert!(digits.len() <= 2, "bucket bound {b} is not a round number");
    }

    // Prometheus asks for OpenMetrics and gets it.
    let om = reqwest::Client::new()
        .get(format!("{}/metrics", d.url))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let om = om.text().await.unwrap();
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE warmpool_acquires counter"), "{om}");
}

/// The tenants' families pass promtool too, in both formats, with a lease and a rejection.
#[tokio::test]
async fn tenant_metrics_pass_promtool() {
    let d = Daemon::start_with(
        &[pool_yaml("t", "min_ready: 1\nmax_ready: 1")],
        "  auth_token_env: E2E_PROM_ADMIN\n  tenants:\n    - { name: team-a, token_env: E2E_PROM_A, quotas: { max_leases: 1, lease_seconds_per_hour: 3600 } }\n",
        &[
            ("E2E_PROM_A", "tok-prom-a-0123456789"),
            ("E2E_PROM_ADMIN", "tok-prom-admin-0123456789"),
        ],
    )
    .await;
    let body = Some(json!({"pool": "t", "ttl_s": 60}));
    let (st, _, v) = d
        .call_as(
            "tok-prom-a-0123456789",
            Method::POST,
            "/v1/leases",
            body.clone(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _, _) = d
        .call_as("tok-prom-a-0123456789", Method::POST, "/v1/leases", body)
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let admin = Some("tok-prom-admin-0123456789");
    let text = d.metrics_as(admin, None).await;
    for want in [
        "warmpool_tenant_leases{tenant=\"team-a\"} 1",
        "warmpool_tenant_acquires_total{tenant=\"team-a\"} 1",
        "warmpool_tenant_rejections_total{tenant=\"team-a\",quota=\"max_leases\"} 1",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // The 60 s lease's time, less what the budget refilled (1 s a second) since it was taken.
    let used: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("warmpool_tenant_lease_seconds_used{tenant=\"team-a\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lease-seconds of team-a in:\n{text}"));
    assert!((50..=60).contains(&used), "{used}");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool: {said}\n{text}");
    let om = d
        .metrics_as(admin, Some("application/openmetrics-text; version=1.0.0"))
        .await;
    assert!(
        om.contains("# TYPE warmpool_tenant_rejections counter"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1, "{om}");
}
