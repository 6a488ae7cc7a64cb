//! Benchmarks taken side by side in one run on one engine, reported as ratios:
//! the raw Engine API (create+start latency and parallel throughput), warm acquire over
//! warmpool's HTTP API at several concurrencies, refill, shutdown, and the daemon's footprint.
//!
//!     cargo build --release -p warmpool -p warmpool-e2e
//!     WARMPOOL_BIN=$PWD/target/release/warmpool ./target/release/bench [--quick] [--json FILE]
//!
//! Measurements only: nothing is asserted beyond "the run worked".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use reqwest::Method;
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, IMAGE, containers_of, engine_and_image, pool_yaml};

struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        n: v.len(),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
    }
}

fn row(name: &str, s: &Stats, unit: &str, extra: &str) -> String {
    format!(
        "| {name} | {} | {:.3} {unit} | {:.3} {unit} | {:.3} {unit} | {extra} |",
        s.n, s.p50, s.p90, s.p99
    )
}

const RAW_HOST: &str = "bench-raw";

/// One create+start through the Engine API, hardened like a warmpool container.
async fn raw_create_start(d: &Docker) -> (String, f64) {
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        labels: Some(HashMap::from([
            ("warmpool.managed".to_string(), "true".to_string()),
            ("warmpool.host".to_string(), RAW_HOST.to_string()),
        ])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            init: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            network_mode: Some("none".into()),
            memory: Some(512 << 20),
            pids_limit: Some(256),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let c = d.create_container(None, body).await.expect("create");
    d.start_container(&c.id, None).await.expect("start");
    (c.id, t.elapsed().as_secs_f64() * 1000.0)
}

async fn raw_remove_all(d: &Docker) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("warmpool.host={RAW_HOST}")],
    )]);
    let list = d
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    for c in list {
        let _ = d
            .remove_container(c.id.as_deref().unwrap_or(""), Some(opts.clone()))
            .await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);
    engine_and_image();
    let docker = Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut record = serde_json::Map::new();

    // 1. Raw engine: sequential create+start latency, then parallel throughput.
    let n_seq = if quick { 8 } else { 30 };
    let mut lat = Vec::new();
    for _ in 0..n_seq {
        lat.push(raw_create_start(&docker).await.1);
    }
    raw_remove_all(&docker).await;
    let cold = stats(lat);
    out.push("### 1. Raw Engine API (no CLI): create+start\n".into());
    out.push("| measure | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|".into());
    out.push(row(
        "create+start, one at a time",
        &cold,
        "ms",
        "the cold path warm acquires are compared with",
    ));
    record.insert("raw_create_start_ms_p50".into(), json!(cold.p50));
    let per_worker = if quick { 4 } else { 12 };
    let mut rates = Vec::new();
    for workers in [1usize, 2, 4, 8] {
        let d = Arc::new(docker.clone());
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..per_worker {
                    raw_create_start(&d).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rate = (workers * per_worker) as f64 / t.elapsed().as_secs_f64();
        raw_remove_all(&docker).await;
        out.push(format!("| parallel create+start, {workers} worker(s) | {} | {rate:.2} containers/s | | | throughput |", workers * per_worker));
        rates.push((workers, rate));
        record.insert(format!("raw_rate_{workers}w"), json!(rate));
    }

    // 2. Warm acquire over HTTP while refill runs.
    out.push("\n### 2. Warm acquire over warmpool's HTTP API (client-side latency)\n".into());
    out.push("| clients | n | median | p90 | p99 | median vs one cold create+start |\n|---|---|---|---|---|---|".into());
    let rounds = if quick { 2 } else { 6 };
    let d = Daemon::start_with(
        &[pool_yaml("w", "min_ready: 64\nmax_ready: 64\nmax_total: 130\nsizing: { policy: fixed }\nexhaustion: { strategy: wait, wait_timeout: 60s }")],
        "",
        &[("WARMPOOL_LIMITS__MAX_CONTAINERS", "200")],
    )
    .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    for clients in [1usize, 8, 32, 64] {
        let mut lat = Vec::new();
        let mut server_us = Vec::new();
        for _ in 0..rounds {
            d.warm_up("w").await;
            // Open as many keep-alive connections as clients first: connection setup is the
            // client's cost, not the acquire's.
            let warm: Vec<_> = (0..clients)
                .map(|_| {
                    let (http, url) = (http.clone(), d.url.clone());
                    tokio::spawn(async move {
                        http.get(format!("{url}/healthz")).send().await.map(|_| ())
                    })
                })
                .collect();
            for w in warm {
                let _ = w.await;
            }
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (http, url) = (http.clone(), d.url.clone());
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let r = http
                        .post(format!("{url}/v1/leases"))
                        .json(&json!({"pool": "w"}))
                        .send()
                        .await
                        .unwrap();
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let v: Value = r.json().await.unwrap();
                    (ms, v)
                }));
            }
            let mut ids = Vec::new();
            for t in tasks {
                let (ms, v) = t.await.unwrap();
                assert_eq!(v["source"], "pool", "not a warm acquire: {v}");
                lat.push(ms);
                server_us.push(v["acquire_ms"].as_f64().unwrap());
                ids.push(v["lease_id"].as_str().unwrap().to_string());
            }
            for id in ids {
                d.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                    .await;
            }
        }
        let s = stats(lat);
        let inside = stats(server_us);
        let inside_us = inside.p50 * 1000.0;
        out.push(row(
            &format!("{clients}"),
            &s,
            "ms",
            &format!(
                "{:.0}× faster (inside the daemon: median {inside_us:.0} µs, p99 {:.0} µs)",
                cold.p50 / s.p50,
                inside.p99 * 1000.0
            ),
        ));
        record.insert(format!("warm_acquire_{clients}c_ms_p50"), json!(s.p50));
    }
    let rss_warm = rss_kib(d.pid());
    drop(d);

    // 4. Refill: empty pool to N ready, against the raw parallel rate at the same concurrency.
    out.push("\n### 4. Refill and 5. Shutdown\n".into());
    out.push("| measure | result | vs raw |\n|---|---|---|".into());
    let raw4 = rates.iter().find(|(w, _)| *w == 4).unwrap().1;
    for n in [8u32, 16] {
        let mut d = Daemon::start(&[pool_yaml(
            "r",
            &format!("min_ready: {n}\nmax_ready: {n}\nsizing: {{ policy: fixed }}"),
        )])
        .await;
        // The daemon starts refilling the moment it is ready; time from there to N ready.
        let t = Instant::now();
        d.wait_pool("r", Duration::from_secs(120), |p| p["counts"]["ready"] == n)
            .await;
        let secs = t.elapsed().as_secs_f64();
        let rate = f64::from(n) / secs;
        out.push(format!("| refill empty → {n} ready | {secs:.2} s ({rate:.2} containers/s) | {:.0}% of raw 4-worker rate |", rate / raw4 * 100.0));
        record.insert(format!("refill_{n}_s"), json!(secs));
        let (status, took) = d.terminate(Duration::from_secs(60));
        assert!(status.success());
        let left = containers_of(&d.host_id).len();
        out.push(format!(
            "| SIGTERM with {n} ready → exit | {:.2} s, {left} containers left | |",
            took.as_secs_f64()
        ));
        record.insert(format!("shutdown_{n}_s"), json!(took.as_secs_f64()));
    }

    // 7. Footprint.
    let idle = Daemon::start(&[pool_yaml("i", "min_ready: 0\nmax_ready: 1")]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(idle.pid());
    drop(idle);
    let pdir = tempfile::tempdir().unwrap();
    let mut plug = String::new();
    for (kind, name) in [
        ("sizing", "sizing_adaptive"),
        ("exhaustion", "exhaustion_wait"),
        ("health", "health_exec_probe"),
    ] {
        let f = pdir.path().join(format!("{name}.wasm"));
        std::fs::copy(warmpool_plugin_host::testing::component(name), &f).unwrap();
        plug.push_str(&format!("{kind}: {{ path: \"{}\" }}, ", f.display()));
    }
    let full = Daemon::start_with(
        &[pool_yaml(
            "f",
            &format!(
                "min_ready: 20\nmax_ready: 20\nmax_total: 24\nplugins: {{ {} }}",
                plug.trim_end_matches(", ")
            ),
        )],
        "",
        &[("WARMPOOL_LIMITS__MAX_CONTAINERS", "40")],
    )
    .await;
    full.warm_up("f").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_full = rss_kib(full.pid());
    drop(full);
    out.push("\n### 7. Footprint (daemon RSS)\n".into());
    out.push("| state | RSS |\n|---|---|".into());
    out.push(format!(
        "| idle (one pool, nothing warm) | {:.1} MiB |",
        rss_idle as f64 / 1024.0
    ));
    out.push(format!(
        "| 3 wasm plugins, 20 warm containers | {:.1} MiB |",
        rss_full as f64 / 1024.0
    ));
    out.push(format!(
        "| after the warm-acquire runs (64 warm, ~{} acquires) | {:.1} MiB |",
        rounds * 105,
        rss_warm as f64 / 1024.0
    ));
    record.insert("rss_idle_kib".into(), json!(rss_idle));
    record.insert("rss_3_plugins_20_warm_kib".into(), json!(rss_full));

    raw_remove_all(&docker).await;
    println!("{}", out.join("\n"));
    if let Some(path) = json_out {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&Value::Object(record)).unwrap(),
        )
        .unwrap();
    }
}
