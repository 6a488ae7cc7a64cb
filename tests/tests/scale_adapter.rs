//! The autoscaling bridge of examples/autoscale against the real daemon: the adapter script
//! carries a number (as KEDA or an HPA leaves it in `spec.replicas`) to the pool's scale
//! override, clamped to its ceiling, with the daemon's token, and reports what it set; from the
//! daemon's own metrics it sizes the pool by the acquire rate and the queued acquires; and what
//! the KEDA and HPA examples read from the daemon (the metrics-api URL and `valueLocation`,
//! the metric names of the queries) is what the daemon serves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, eventually, pool_yaml, repo_root};

fn script() -> PathBuf {
    repo_root().join("examples/autoscale/warmpool-scale-adapter.sh")
}

fn adapter(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(script()).args(["--url", url]).args(args);
    c.env_remove("WARMPOOL_TOKEN");
    if let Some(t) = token {
        c.env("WARMPOOL_TOKEN", t);
    }
    c.output().expect("run the adapter")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The pool's stats, with the daemon's token.
async fn pool_with(d: &Daemon, token: &str, name: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/pools/{name}", d.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_adapter_carries_replicas_to_the_pool_with_the_token() {
    const TOKEN: &str = "adapt3r-token";
    let d = Daemon::start_with(
        &[pool_yaml("ad", "min_ready: 1\nmax_ready: 2\nmax_total: 6")],
        "  auth_token_env: E2E_TOKEN\n",
        &[("E2E_TOKEN", TOKEN)],
    )
    .await;
    let replicas = d.dir.path().join("replicas");
    let report = d.dir.path().join("reported");
    let cmd = format!("cat {}", replicas.display());
    let report_cmd = format!("echo \"$1\" > {}", report.display());
    let args = [
        "--pool",
        "ad",
        "--ceiling",
        "4",
        "--replicas-cmd",
        &cmd,
        "--report-cmd",
        &report_cmd,
        "--iterations",
        "1",
    ];

    std::fs::write(&replicas, "3\n").unwrap();
    let out = adapter(&d.url, Some(TOKEN), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "ad: min_ready 3 max_ready 4 (replicas 3): set"
    );
    let p = pool_with(&d, TOKEN, "ad").await;
    assert_eq!(
        p["override"],
        json!({"min_ready": 3, "max_ready": 4}),
        "{p}"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap().trim(), "3");

    // More than the ceiling: the ceiling.
    std::fs::write(&replicas, "9").unwrap();
    let out = adapter(&d.url, Some(TOKEN), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p = pool_with(&d, TOKEN, "ad").await;
    assert_eq!(
        p["override"],
        json!({"min_ready": 4, "max_ready": 4}),
        "{p}"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap().trim(), "4");

    // Without the token, or with a number that is not one, nothing changes and it says why.
    std::fs::write(&replicas, "2").unwrap();
    let out = adapter(&d.url, None, &args);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unauthorized"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&replicas, "two").unwrap();
    let out = adapter(&d.url, Some(TOKEN), &args);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a whole number"));
    assert_eq!(
        pool_with(&d, TOKEN, "ad").await["override"],
        json!({"min_ready": 4, "max_ready": 4})
    );
    // A ceiling past the pool's max_total: the daemon's 422 comes through.
    std::fs::write(&replicas, "2").unwrap();
    let mut big = args;
    big[3] = "7";
    let out = adapter(&d.url, Some(TOKEN), &big);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("out_of_bounds"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn the_adapter_sizes_the_pool_from_the_acquire_rate_and_the_waiters() {
    let d = Daemon::start(&[
        pool_yaml("mx", "min_ready: 1\nmax_ready: 2\nmax_total: 8"),
        pool_yaml(
            "wq",
            "min_ready: 0\nmax_ready: 1\nmax_total: 1\nexhaustion: { strategy: wait, wait_timeout: 30s }",
        ),
    ])
    .await;
    d.warm_up("mx").await;

    // Two samples 4 s apart, 4 acquires between them: about 1 acquire/s, times a lead of 3 s.
    let mut child = Command::new("bash")
        .arg(script())
        .args([
            "--url",
            &d.url,
            "--pool",
            "mx",
            "--metrics",
            "--lead-s",
            "3",
        ])
        .args([
            "--floor",
            "1",
            "--ceiling",
            "6",
            "--period",
            "4",
            "--iterations",
            "2",
        ])
        .env_remove("WARMPOOL_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first, "mx: min_ready 1 max_ready 6 (rate 0.00/s, waiters 0): set",
        "the first sample has no rate yet"
    );
    let leases = futures_util::future::join_all(
        (0..4).map(|_| d.acquire(json!({"pool": "mx", "wait_ms": 3000}))),
    )
    .await;
    assert_eq!(leases.len(), 4);
    let second = lines.next().unwrap().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{second}\n{}", text(&out.stderr));
    assert!(
        second.starts_with("mx: min_ready 3 max_ready 6 (rate 0.") && second.ends_with("set"),
        "{second}"
    );
    assert_eq!(
        d.pool("mx").await["override"],
        json!({"min_ready": 3, "max_ready": 6})
    );

    // Queued acquires: one more warm container each (here up to the ceiling of 1).
    let held = d.acquire(json!({"pool": "wq"})).await;
    let url = d.url.clone();
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{url}/v1/leases"))
                    .json(&json!({"pool": "wq", "wait_ms": 20_000}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "two queued acquires", || async {
        (d.pool("wq").await["waiters"] == 2).then_some(())
    })
    .await;
    let out = adapter(
        &d.url,
        None,
        &[
            "--pool",
            "wq",
            "--metrics",
            "--ceiling",
            "1",
            "--iterations",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "wq: min_ready 1 max_ready 1 (rate 0.00/s, waiters 2): set"
    );
    // Let the queued acquires have their containers before the daemon goes.
    let id = held["lease_id"].as_str().unwrap();
    d.call(reqwest::Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    for w in waiting {
        let _ = w.await;
    }
}

#[tokio::test]
async fn what_the_keda_and_hpa_examples_read_is_what_the_daemon_serves() {
    let d = Daemon::start(&[pool_yaml("python", "min_ready: 1\nmax_ready: 1")]).await;
    d.acquire(json!({"pool": "python"})).await;
    let keda = std::fs::read_to_string(repo_root().join("examples/autoscale/keda.yaml")).unwrap();
    let hpa =
        std::fs::read_to_string(repo_root().join("examples/autoscale/hpa-prometheus-adapter.yaml"))
            .unwrap();

    // The metrics-api trigger: this URL's path, and its valueLocation, a number at the top.
    let url = keda
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .expect("a metrics-api url");
    let path = &url[url.find("/v1/").expect("a /v1 path")..];
    assert_eq!(path, "/v1/pools/python");
    let location = keda
        .lines()
        .find_map(|l| l.trim().strip_prefix("valueLocation: "))
        .expect("a valueLocation");
    let (st, _, v) = d.call(reqwest::Method::GET, path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v[location].is_u64(), "{location} in {v}");

    // Every metric the queries name is a series of the pool on /metrics.
    let (_, _, m) = d.call(reqwest::Method::GET, "/metrics", None).await;
    let m = m.as_str().unwrap().to_string();
    // (A name ending in _per_second is one the HPA's adapter rule gives its result.)
    let mut names: Vec<&str> = [&keda, &hpa]
        .iter()
        .flat_map(|doc| doc.match_indices("warmpool_").map(|(i, _)| &doc[i..]))
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .filter(|name| !name.ends_with("_per_second"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, ["warmpool_acquires_total", "warmpool_pool_waiters"]);
    for name in names {
        assert!(
            m.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) && l.contains("pool=\"python\"")),
            "no series {name} of pool python on /metrics:\n{m}"
        );
    }
}
