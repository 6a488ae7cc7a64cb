//! 6b. Plugins in the running daemon: what one costs in memory (a Rust and a Python guest, a
//! shared compile, a restart from the cache, a swap back), and what a hostile guest in one pool
//! costs the other pools: their warm acquire and `/healthz` latency with the guest sleeping,
//! spinning or flooding in service, and while a Python plugin compiles, as ratios to the same
//! daemon with no plugin.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmpool_e2e::{
    Daemon, Guest, eventually, peak_rss, plugin_yaml, pool_yaml, replace_by_rename,
};

use crate::{Report, Stats, rss_kib, stats};

const RS: Guest = Guest::Rust("test_guest_hostile_sizing");
const PY: Guest = Guest::Python("hostile_sizing", "sizing-policy");

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn settled(d: &Daemon, pools: &[&str]) {
    eventually(Duration::from_secs(300), "plugins settle", || async {
        for p in pools {
            if d.plugin(p, "sizing").await["state"] == "compiling" {
                return None;
            }
        }
        Some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

fn sized(file: &Path, mode: &str) -> String {
    format!(
        "min_ready: 1\nmax_ready: 1\n{}",
        plugin_yaml("sizing", file, &[("mode", mode)])
    )
}

/// RSS of a daemon with no plugin, one Rust plugin, one Python plugin (compiled fresh), two
/// Python pools on one file, after a restart that loads the cache, and after swapping both
/// Python pools to the Rust guest.
async fn memory(r: &mut Report) {
    r.line("| daemon | RSS | vs no plugin | note |\n|---|---|---|---|");
    let base = Daemon::start(&[pool_yaml("m", "min_ready: 1\nmax_ready: 1")]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let none = rss_kib(base.pid());
    drop(base);
    r.line(&format!(
        "| one pool, no plugin | {:.1} MiB | | |",
        mib(none)
    ));
    r.record("plugin_rss_none_kib", none as f64);

    let dir = tempfile::tempdir().unwrap();
    let rs = RS.copy_to(dir.path(), "rs.wasm");
    let d = Daemon::start(&[pool_yaml("m", &sized(&rs, "fine"))]).await;
    settled(&d, &["m"]).await;
    let one_rs = rss_kib(d.pid());
    let st = d.plugin("m", "sizing").await;
    drop(d);
    r.line(&format!(
        "| one Rust plugin | {:.1} MiB | +{:.1} MiB | instance {} KiB, code {} KiB |",
        mib(one_rs),
        mib(one_rs.saturating_sub(none)),
        st["memory_bytes"].as_u64().unwrap_or(0) >> 10,
        st["code_bytes"].as_u64().unwrap_or(0) >> 10
    ));
    r.record(
        "plugin_rss_rust_delta_kib",
        one_rs.saturating_sub(none) as f64,
    );

    let (a, b) = (
        PY.copy_to(dir.path(), "a.wasm"),
        PY.copy_to(dir.path(), "b.wasm"),
    );
    let t0 = Instant::now();
    let mut d = Daemon::start(&[pool_yaml("m", &sized(&a, "fine"))]).await;
    settled(&d, &["m"]).await;
    let compile_s = t0.elapsed().as_secs_f64() - 2.0;
    let one_py = rss_kib(d.pid());
    let peak = peak_rss(d.pid()) >> 10;
    let st = d.plugin("m", "sizing").await;
    r.line(&format!(
        "| one Python plugin, compiled at start | {:.1} MiB | +{:.1} MiB | instance {} KiB, code {} KiB; peak RSS during the compile {:.0} MiB; ready to serve ~{compile_s:.0} s after start |",
        mib(one_py),
        mib(one_py.saturating_sub(none)),
        st["memory_bytes"].as_u64().unwrap_or(0) >> 10,
        st["code_bytes"].as_u64().unwrap_or(0) >> 10,
        mib(peak)
    ));
    r.record(
        "plugin_rss_python_delta_kib",
        one_py.saturating_sub(none) as f64,
    );
    r.record("plugin_python_compile_s", compile_s);

    d.write_pools(&[
        pool_yaml("m", &sized(&a, "fine")),
        pool_yaml("n", &sized(&b, "fine")),
    ]);
    eventually(Duration::from_secs(60), "pool n loads", || async {
        (d.plugin("n", "sizing").await["state"] == "active").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let two_py = rss_kib(d.pid());
    r.line(&format!(
        "| two Python pools, one file content (one compile) | {:.1} MiB | +{:.1} MiB | |",
        mib(two_py),
        mib(two_py.saturating_sub(none))
    ));
    r.record(
        "plugin_rss_two_python_delta_kib",
        two_py.saturating_sub(none) as f64,
    );

    d.terminate(Duration::from_secs(30));
    d.restart().await;
    settled(&d, &["m", "n"]).await;
    let cached = rss_kib(d.pid());
    r.line(&format!(
        "| the same, restarted (loaded from the compile cache) | {:.1} MiB | +{:.1} MiB | no compile |",
        mib(cached),
        mib(cached.saturating_sub(none))
    ));
    r.record(
        "plugin_rss_two_python_cached_delta_kib",
        cached.saturating_sub(none) as f64,
    );

    let rs_built = RS.built();
    replace_by_rename(&rs_built, &a);
    replace_by_rename(&rs_built, &b);
    eventually(
        Duration::from_secs(60),
        "both pools swap to Rust",
        || async {
            let (m, n) = (d.plugin("m", "sizing").await, d.plugin("n", "sizing").await);
            (m["code_bytes"].as_u64() < Some(1 << 20) && n["code_bytes"].as_u64() < Some(1 << 20))
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = rss_kib(d.pid());
    r.line(&format!(
        "| both swapped to the Rust guest | {:.1} MiB | +{:.1} MiB | the Python code is unmapped, its heap returned |",
        mib(back),
        mib(back.saturating_sub(none))
    ));
    r.record(
        "plugin_rss_swapped_back_delta_kib",
        back.saturating_sub(none) as f64,
    );
}

/// One acquire on `good`; its latency in ms joins `warm` when it was served from the pool.
async fn timed_acquire(http: &reqwest::Client, d: &Daemon, warm: &mut Vec<f64>) -> Value {
    let t = Instant::now();
    let v: Value = http
        .post(format!("{}/v1/leases", d.url))
        .json(&json!({"pool": "good"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if v["source"] == "pool" {
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v
}

/// Warm acquires on `good` (rounds of 8, each after a warm-up) and sequential `/healthz`.
async fn serve_latency(d: &Daemon, rounds: usize, healthz: usize) -> (Stats, Stats) {
    let http = reqwest::Client::new();
    let mut acq = Vec::new();
    for _ in 0..rounds {
        d.warm_up("good").await;
        let mut ids = Vec::new();
        for _ in 0..8 {
            let v = timed_acquire(&http, d, &mut acq).await;
            ids.push(v["lease_id"].as_str().unwrap_or_default().to_string());
        }
        for id in ids {
            let _ = http
                .delete(format!("{}/v1/leases/{id}", d.url))
                .send()
                .await;
        }
    }
    let mut hz = Vec::new();
    for _ in 0..healthz {
        let t = Instant::now();
        let _ = http.get(format!("{}/healthz", d.url)).send().await.unwrap();
        hz.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (stats(acq), stats(hz))
}

/// A client acquiring and releasing on `bad` all along, so its plugin is called often.
fn hammer(d: &Arc<Daemon>, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let (d, stop) = (d.clone(), stop.clone());
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(r) = http
                .post(format!("{}/v1/leases", d.url))
                .json(&json!({"pool": "bad", "wait_ms": 2000}))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && let Some(id) = v["lease_id"].as_str()
            {
                let _ = http
                    .delete(format!("{}/v1/leases/{id}", d.url))
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The other pools' latency under each hostile guest, against the same daemon with none.
async fn containment(quick: bool, r: &mut Report) {
    let (rounds, hz) = if quick { (2, 50) } else { (10, 400) };
    let dir = tempfile::tempdir().unwrap();
    let rs = RS.copy_to(dir.path(), "rs.wasm");
    let py = PY.copy_to(dir.path(), "py.wasm");
    let good = pool_yaml(
        "good",
        "min_ready: 8\nmax_ready: 8\nsizing: { policy: fixed }",
    );
    let cases: Vec<(&str, String)> = vec![
        ("no plugin in `bad`", "min_ready: 1\nmax_ready: 2".into()),
        (
            "Rust guest sleeping 90 s in every call after the first (abandoned at 50 ms)",
            sized(&rs, "sleep-later"),
        ),
        (
            "Python guest looping forever in every call after the first",
            sized(&py, "spin-later"),
        ),
        (
            "Rust guest logging 100,000 lines a call",
            sized(&rs, "flood-log"),
        ),
    ];
    r.line("| guest in pool `bad` | `good` warm acquire p50 | p99 | `/healthz` p50 | p99 | acquire p50 vs none | healthz p50 vs none | `bad` plugin calls / failures |\n|---|---|---|---|---|---|---|---|");
    // The no-plugin daemon is measured first and again last; the ratios divide by the faster
    // of the two, so machine noise makes a hostile row look worse, never better.
    let mut cases = cases;
    cases.push((
        "no plugin in `bad` (measured again, last)",
        cases[0].1.clone(),
    ));
    let mut rows = Vec::new();
    for (name, bad) in cases {
        let d = Arc::new(Daemon::start(&[good.clone(), pool_yaml("bad", &bad)]).await);
        if bad.contains("plugins") {
            settled(&d, &["bad"]).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let h = hammer(&d, &stop);
        let (a, z) = serve_latency(&d, rounds, hz).await;
        stop.store(true, Ordering::Relaxed);
        let _ = h.await;
        let p = d.plugin("bad", "sizing").await;
        let calls = if p.is_null() {
            "–".to_string()
        } else {
            format!(
                "{} / {} ({}, {} log lines dropped)",
                p["calls"],
                p["failures"],
                p["state"].as_str().unwrap_or("?"),
                p["log_dropped"]
            )
        };
        rows.push((name, a, z, calls));
    }
    let base = (
        rows[0].1.p50.min(rows[rows.len() - 1].1.p50),
        rows[0].2.p50.min(rows[rows.len() - 1].2.p50),
    );
    for (name, a, z, calls) in &rows {
        r.line(&format!(
            "| {name} | {:.2} ms | {:.2} ms | {:.3} ms | {:.3} ms | {:.2}× | {:.2}× | {calls} |",
            a.p50,
            a.p99,
            z.p50,
            z.p99,
            a.p50 / base.0,
            z.p50 / base.1
        ));
    }
    let base = Some(base);

    // While a Python plugin compiles: a config reload adds a pool with one (cold cache).
    let d = Arc::new(Daemon::start(std::slice::from_ref(&good)).await);
    d.warm_up("good").await;
    let py2 = PY.copy_to(dir.path(), "fresh.wasm");
    d.write_pools(&[good.clone(), pool_yaml("bad", &sized(&py2, "fine"))]);
    eventually(Duration::from_secs(30), "the compile starts", || async {
        (d.plugin("bad", "sizing").await["state"] == "compiling").then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let (mut acq, mut hzs) = (Vec::new(), Vec::new());
    while d.plugin("bad", "sizing").await["state"] == "compiling" {
        let t = Instant::now();
        let _ = http.get(format!("{}/healthz", d.url)).send().await.unwrap();
        hzs.push(t.elapsed().as_secs_f64() * 1000.0);
        if hzs.len() % 20 == 0 {
            let v = timed_acquire(&http, &d, &mut acq).await;
            if let Some(id) = v["lease_id"].as_str() {
                let _ = http
                    .delete(format!("{}/v1/leases/{id}", d.url))
                    .send()
                    .await;
            }
        }
    }
    if let (Some((ba, bz)), false, false) = (base, acq.is_empty(), hzs.is_empty()) {
        let (a, z) = (stats(acq), stats(hzs));
        let max = z.max;
        r.line(&format!(
            "| a Python plugin compiling (added by a config reload) | {:.2} ms | {:.2} ms | {:.3} ms | {:.3} ms | {:.2}× | {:.2}× | healthz max {max:.1} ms over {} calls |",
            a.p50, a.p99, z.p50, z.p99, a.p50 / ba, z.p50 / bz, z.n
        ));
    }
}

pub async fn plugins(quick: bool, r: &mut Report) {
    r.section("6b. Plugins in the daemon: memory, and hostile guests against the other pools");
    memory(r).await;
    r.line("");
    containment(quick, r).await;
}
