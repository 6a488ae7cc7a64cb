//! Plugins in the running daemon against the real engine: a sizing plugin replaced on disk
//! while clients acquire moves the pool to the new target with no failed acquire; a broken
//! replacement keeps the old version serving; a hostile plugin leaves the daemon up on its
//! built-in policy, with the reason reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, plugin_check, pool_yaml, replace_by_rename};
use warmpool_test_components::component;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_the_sizing_plugin_under_load_moves_the_target_without_failures() {
    let pdir = tempfile::tempdir().unwrap();
    let file = pdir.path().join("sizing.wasm");
    std::fs::copy(component("sizing_fixed"), &file).unwrap();
    let d = Arc::new(
        Daemon::start(&[pool_yaml(
            "hs",
            &format!(
                "min_ready: 1\nmax_ready: 4\nmax_total: 12\nexhaustion: {{ strategy: wait, wait_timeout: 30s }}\nplugins: {{ sizing: {{ path: \"{}\" }} }}",
                file.display()
            ),
        )])
        .await,
    );
    d.warm_up("hs").await;
    let first = d
        .plugin_settled("hs", "sizing", Duration::from_secs(60))
        .await;
    assert_eq!(first["state"], "active", "{first}");
    assert_eq!(d.pool("hs").await["policies"]["sizing"], "wasm:sizing.wasm");

    // Clients acquire, exec and release without pause for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (d, stop, ok) = (d.clone(), stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (st, _, l) = d
                    .call(
                        Method::POST,
                        "/v1/leases",
                        Some(json!({"pool": "hs", "wait_ms": 25_000})),
                    )
                    .await;
                if st != StatusCode::CREATED {
                    failures.push(format!("{st}: {l}"));
                    continue;
                }
                d.call(
                    Method::DELETE,
                    &format!("/v1/leases/{}", l["lease_id"].as_str().unwrap()),
                    None,
                )
                .await;
                ok.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The reported target also counts queued acquires; the reason says which policy decided.
    let before = d.pool("hs").await;
    assert!(
        before["target_reason"]
            .as_str()
            .unwrap()
            .starts_with("fixed: keep min_ready=1"),
        "{before}"
    );

    // Swap in adaptive: under this load it wants max_ready. The swap is announced as an event.
    let stream = reqwest::Client::new()
        .get(format!("{}/v1/events?pool=hs", d.url))
        .send()
        .await
        .unwrap();
    let reloads = tokio::spawn(warmpool_e2e::collect_events(stream, &["reload"]));
    let t0 = Instant::now();
    replace_by_rename(&component("sizing_adaptive"), &file);
    loop {
        let p = d.plugin("hs", "sizing").await;
        if p["sha256"] != first["sha256"] {
            assert_eq!(p["reloads"], 2);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the new plugin was not picked up: {p}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("rename → new plugin serving: {:?}", t0.elapsed());
    let ev = reloads
        .await
        .unwrap()
        .into_iter()
        .find(|e| e["kind"] == "reload")
        .unwrap();
    assert!(
        ev["reason"].as_str().unwrap().starts_with("sizing plugin"),
        "{ev}"
    );
    assert!(
        ev["reason"].as_str().unwrap().contains("swapped in"),
        "{ev}"
    );
    d.wait_pool("hs", Duration::from_secs(15), |p| {
        p["target"] == 4
            && p["target_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("adaptive:"))
    })
    .await;

    // A broken file does not replace the working plugin.
    let cut = pdir.path().join("cut.wasm");
    let bytes = std::fs::read(component("sizing_fixed")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let serving = d.plugin("hs", "sizing").await["sha256"].clone();
    replace_by_rename(&cut, &file);
    let deadline = Instant::now() + Duration::from_secs(5);
    let p = loop {
        let p = d.plugin("hs", "sizing").await;
        if p["last_error"].is_string() {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the broken file was not reported: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("not a valid wasm component"),
        "{p}"
    );
    assert_eq!(
        p["sha256"], serving,
        "a broken file replaced the serving plugin"
    );
    assert_eq!(p["state"], "active");
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let failures = c.await.unwrap();
        assert!(
            failures.is_empty(),
            "acquires failed during the swap: {failures:?}"
        );
    }
    assert!(
        ok.load(Ordering::Relaxed) >= 5,
        "too little load to mean anything: {}",
        ok.load(Ordering::Relaxed)
    );
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("warmpool_plugin_reloads_total{pool=\"hs\",kind=\"sizing\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hostile_plugin_leaves_the_daemon_serving_on_its_builtin() {
    let pdir = tempfile::tempdir().unwrap();
    let spin = pdir.path().join("spin.wasm");
    std::fs::copy(component("test_guest_spin_forever"), &spin).unwrap();
    let wrong = pdir.path().join("wrong.wasm");
    std::fs::copy(component("exhaustion_cold"), &wrong).unwrap();
    let d = Daemon::start(&[pool_yaml(
        "hz",
        &format!(
            "min_ready: 2\nmax_ready: 2\nplugins: {{ sizing: {{ path: \"{}\" }}, health: {{ path: \"{}\" }} }}",
            spin.display(),
            wrong.display()
        ),
    )])
    .await;
    // The built-in (adaptive, min_ready 2) keeps the pool warm.
    d.warm_up("hz").await;
    let p = warmpool_e2e::eventually(Duration::from_secs(60), "the plugins load", || async {
        let p = d.plugin("hz", "sizing").await;
        let h = d.plugin("hz", "health").await;
        (p["state"] != "compiling" && h["state"] != "compiling").then_some(p)
    })
    .await;
    assert_eq!(p["state"], "fallback", "{p}");
    assert!(
        p["last_error"].as_str().unwrap().contains("deadline"),
        "{p}"
    );
    let h = d.plugin("hz", "health").await;
    assert!(
        h["last_error"]
            .as_str()
            .unwrap()
            .contains("not a health-check component"),
        "{h}"
    );
    let lease = d.acquire(json!({"pool": "hz"})).await;
    assert_eq!(lease["source"], "pool");
    assert!(
        d.pool("hz").await["policies"]["sizing"]
            .as_str()
            .unwrap()
            .starts_with("builtin:adaptive")
    );

    // The CLI shows the same, reason included.
    let out = std::process::Command::new(warmpool_e2e::binary())
        .args(["plugin", "list", "--url", &d.url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("hz") && l.contains("sizing") && l.contains("fallback")),
        "{table}"
    );
    assert!(
        table.contains("last error: call exceeded its deadline"),
        "{table}"
    );
}

#[test]
fn plugin_check_reports_good_and_bad_components() {
    let out = plugin_check("sizing", &["headroom=2"], &component("sizing_predictive"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("a valid sizing-policy component"),
        "{stdout}"
    );
    assert!(stdout.contains("burst  → target"), "{stdout}");

    let out = plugin_check("sizing", &[], &component("test_guest_panics"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("hostile guest refuses to size a pool"),
        "{stderr}"
    );
}
