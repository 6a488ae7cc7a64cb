//! Section 2, warm acquire over warmpool's HTTP API with 1, 8, 32 and 64 concurrent clients, while
//! refill runs, as a ratio to one cold create+start measured in the same run, and to a null
//! route: `GET /healthz` from the same client at the same concurrency, timed in the same round
//! just before the acquires. The null route is what HTTP costs on this machine, so that ratio is
//! what the acquire itself adds. Run twice: without a state store, and with leases persisted by
//! group commit (`server.state_dir`), so the cost of persistence on the acquire path is
//! measured, not assumed.

use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, pool_yaml};

use crate::{Report, Stats, row, stats};

/// Returns the daemon's RSS after the runs, in KiB.
pub async fn warm_acquire(
    cold: &Stats,
    clients: &[usize],
    rounds: usize,
    persist: bool,
    r: &mut Report,
) -> u64 {
    let (title, key, extra) = if persist {
        (
            "2b. Warm acquire with leases persisted (state_dir, 20 ms group commit)",
            "persisted_",
            "  state_dir: {STATE_DIR}\n",
        )
    } else {
        (
            "2. Warm acquire over warmpool's HTTP API (client-side latency)",
            "",
            "",
        )
    };
    r.section(title);
    r.line("| clients | n | median | p90 | p99 | median vs one cold create+start, and vs the null route |\n|---|---|---|---|---|---|");
    let d = Daemon::start_with(
        &[pool_yaml("w", "min_ready: 64\nmax_ready: 64\nmax_total: 130\nsizing: { policy: fixed }\nexhaustion: { strategy: wait, wait_timeout: 60s }")],
        extra,
        &[("WARMPOOL_LIMITS__MAX_CONTAINERS", "200")],
    )
    .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    for &clients in clients {
        let mut lat = Vec::new();
        let mut null = Vec::new();
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
            // The null route, same clients, same connections, just before the acquires.
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (http, url) = (http.clone(), d.url.clone());
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let r = http.get(format!("{url}/healthz")).send().await.unwrap();
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let _ = r.bytes().await;
                    ms
                }));
            }
            for t in tasks {
                null.push(t.await.unwrap());
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
        let null = stats(null);
        let inside = stats(server_us);
        r.line(&row(
            &format!("{clients}"),
            &s,
            "ms",
            &format!(
                "{:.0}× faster (inside the daemon: median {:.0} µs, p99 {:.0} µs); {:.2}× the null route (GET /healthz: median {:.3} ms, p99 {:.3} ms)",
                cold.p50 / s.p50,
                inside.p50 * 1000.0,
                inside.p99 * 1000.0,
                s.p50 / null.p50,
                null.p50,
                null.p99
            ),
        ));
        r.record(&format!("{key}warm_acquire_{clients}c_ms_p50"), s.p50);
        r.record(&format!("{key}warm_acquire_{clients}c_ms_p99"), s.p99);
        r.record(&format!("{key}null_route_{clients}c_ms_p50"), null.p50);
        r.record(
            &format!("{key}warm_acquire_{clients}c_vs_null"),
            s.p50 / null.p50,
        );
    }
    crate::rss_kib(d.pid())
}
