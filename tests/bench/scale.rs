//! Section 9: how the daemon's costs grow with the number of warm containers, on the local
//! engine. At each size: the fill from empty, warm acquire latency (one client, a few acquires
//! per round, so the pool never runs dry), the daemon's RSS and RSS per container over an idle
//! daemon, a `kill -9` and restart's reconcile (leases persisted, so the restart re-adopts every
//! container that was never lendable), and a SIGTERM's shutdown, which removes them all.
//!
//! The aims, from issue #12: acquire no slower with more containers, under 64 MB of RSS at
//! 1,000, reconcile and shutdown no worse than linear. Nothing is asserted; the figures go in
//! BENCHMARKS.md.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use warmpool_e2e::{Daemon, Setup, containers_of, pool_yaml};

use crate::{Report, rss_kib, stats};

/// Acquires per round; each round releases them and waits for the refill, so even the smallest
/// pool serves every acquire warm.
const PER_ROUND: usize = 5;

pub async fn scale(quick: bool, r: &mut Report) {
    let (sizes, rounds): (&[u32], usize) = if quick {
        (&[10, 30], 2)
    } else {
        (&[10, 100, 1000], 10)
    };
    r.section("9. How cost grows with scale (one engine, busybox)");
    r.line("| warm containers | fill from empty | acquire p50 | acquire p99 | daemon RSS | RSS per container | restart → ready (reconcile) | re-adopted | SIGTERM → exit | left |\n|---|---|---|---|---|---|---|---|---|---|");
    let idle = {
        let d = Daemon::start(&[pool_yaml("i", "min_ready: 0\nmax_ready: 1")]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_kib(d.pid())
    };
    for &n in sizes {
        let limits = format!(
            "  max_containers: {}\n  max_concurrent_creates: 4\n",
            n + 50
        );
        let t = Instant::now();
        let mut d = Daemon::start_setup(
            &[pool_yaml(
                "s",
                &format!(
                    "min_ready: {n}\nmax_ready: {n}\nmax_total: {}\nsizing: {{ policy: fixed }}\nexhaustion: {{ strategy: wait, wait_timeout: 60s }}\nlease: {{ default_ttl: 1h }}",
                    n + 20
                ),
            )],
            Setup {
                server: "  state_dir: {STATE_DIR}\n",
                limits: &limits,
                // A thousand removals take longer than the harness's default grace.
                env: &[("WARMPOOL_SERVER__SHUTDOWN_GRACE", "300s")],
            },
        )
        .await;
        warm_up(&d, n).await;
        let fill = t.elapsed().as_secs_f64();

        let mut lat = Vec::new();
        for _ in 0..rounds {
            let mut ids = Vec::new();
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                let v = d.acquire(json!({"pool": "s"})).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(v["source"], "pool", "not a warm acquire: {v}");
                ids.push(v["lease_id"].as_str().unwrap().to_string());
            }
            for id in ids {
                d.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                    .await;
            }
            warm_up(&d, n).await;
        }
        let lat = stats(lat);
        let rss = rss_kib(d.pid());
        let per = (rss.saturating_sub(idle)) as f64 / f64::from(n);

        d.kill9();
        let t = Instant::now();
        d.restart().await;
        let reconcile = t.elapsed().as_secs_f64();
        let adopted = d.pool("s").await["counters"]["adopted_total"]
            .as_u64()
            .unwrap_or(0);
        warm_up(&d, n).await;

        let (status, took) = d.terminate(Duration::from_secs(600));
        assert!(status.success());
        let left = containers_of(&d.host_id).len();
        r.line(&format!(
            "| {n} | {fill:.1} s | {:.3} ms | {:.3} ms | {:.1} MiB | {:.1} KiB | {reconcile:.2} s | {adopted} | {:.2} s | {left} |",
            lat.p50,
            lat.p99,
            rss as f64 / 1024.0,
            per,
            took.as_secs_f64()
        ));
        r.record(&format!("scale_{n}_fill_s"), fill);
        r.record(&format!("scale_{n}_acquire_ms_p50"), lat.p50);
        r.record(&format!("scale_{n}_acquire_ms_p99"), lat.p99);
        r.record(&format!("scale_{n}_rss_kib"), rss as f64);
        r.record(&format!("scale_{n}_reconcile_s"), reconcile);
        r.record(&format!("scale_{n}_shutdown_s"), took.as_secs_f64());
    }
    r.line(&format!(
        "\nAn idle daemon (one pool, nothing warm) holds {:.1} MiB; RSS per container is the rest divided by the warm count.",
        idle as f64 / 1024.0
    ));
}

/// Wait until the pool holds its `n` ready, however long a thousand creates take.
async fn warm_up(d: &Daemon, n: u32) {
    let within = 60_000 + u64::from(n) * 500;
    let (st, _, v) = d
        .call(
            Method::POST,
            "/v1/pools/s/warm-up",
            Some(json!({"timeout_ms": within.min(600_000)})),
        )
        .await;
    assert_eq!(st, 200, "pool s did not fill: {v}");
}
