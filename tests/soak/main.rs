//! Soak run: acquire / exec / release cycles against the real engine through the real binary,
//! with reuse off and on, then checks that the pools are back at target, no lease is left, the
//! engine holds exactly the daemon's containers, and reports the daemon's RSS before and after.
//!
//!     cargo run --release -p warmpool-e2e --bin soak -- [--cycles N]   (N per mode, default 1000)
//!
//! Exits non-zero if any cycle failed or any end check does not hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, pool_yaml};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

const REUSE: &str = r#"reuse: { enabled: true, max_uses: 50, reset: ["rm -rf /tmp/* /tmp/.[!.]* /work/* /work/.[!.]*"], verify: ["test -z \"$(ls -A /tmp)\" && test -z \"$(ls -A /work)\""] }"#;

async fn cycles(
    d: Arc<Daemon>,
    pool: &'static str,
    reuse: bool,
    n: u64,
    clients: u64,
) -> (u64, Vec<String>, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (d, done) = (d.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while done.fetch_add(1, Ordering::Relaxed) < n {
                let (st, _, l) = d
                    .call(
                        Method::POST,
                        "/v1/leases",
                        Some(json!({"pool": pool, "wait_ms": 60_000})),
                    )
                    .await;
                if st != StatusCode::CREATED {
                    errors.push(format!("acquire {st}: {l}"));
                    continue;
                }
                let id = l["lease_id"].as_str().unwrap().to_string();
                let (st, _, out) = d
                    .call(
                        Method::POST,
                        &format!("/v1/leases/{id}/exec"),
                        Some(json!({"cmd": ["sh", "-c", "echo $$ > /tmp/pid && cat /tmp/pid"]})),
                    )
                    .await;
                if st != StatusCode::OK || out["exit_code"] != 0 {
                    errors.push(format!("exec {st}: {out}"));
                }
                let path = if reuse {
                    format!("/v1/leases/{id}?reuse=true")
                } else {
                    format!("/v1/leases/{id}")
                };
                let (st, _, r) = d.call(Method::DELETE, &path, None).await;
                if !st.is_success()
                    || (reuse
                        && r["reused"] != true
                        && r["reason"]
                            .as_str()
                            .is_none_or(|x| !x.starts_with("max_uses")))
                {
                    errors.push(format!("release {st}: {r}"));
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    (n, errors, t0.elapsed())
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip_while(|a| a != "--cycles")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // --persist: leases in a state store (group commit), to show it neither leaks nor grows.
    let persist = std::env::args().any(|a| a == "--persist");
    let server_extra = if persist {
        "  state_dir: {STATE_DIR}\n"
    } else {
        ""
    };
    let d = Arc::new(
        Daemon::start_with(&[
            pool_yaml("single", "min_ready: 4\nmax_ready: 8\nmax_total: 12\nworkdir: /work\nexhaustion: { strategy: wait, wait_timeout: 60s }"),
            pool_yaml("reused", &format!("min_ready: 4\nmax_ready: 8\nmax_total: 12\nworkdir: /work\nexhaustion: {{ strategy: wait, wait_timeout: 60s }}\n{REUSE}")),
        ], server_extra, &[])
        .await,
    );
    let store_file = d.dir.path().join("state/warmpool-state.redb");
    let store_size = || std::fs::metadata(&store_file).map_or(0, |m| m.len());
    d.warm_up("single").await;
    d.warm_up("reused").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = d.pid();
    let rss_before = rss_kib(pid);
    let store_before = store_size();

    let (n1, e1, t1) = cycles(d.clone(), "single", false, n, 8).await;
    let rss_mid = rss_kib(pid);
    let (n2, e2, t2) = cycles(d.clone(), "reused", true, n, 8).await;

    // Settle: both pools back at target, nothing leased.
    let mut ok = true;
    for pool in ["single", "reused"] {
        let p = d
            .wait_pool(pool, Duration::from_secs(120), |p| {
                p["counts"]["leased"] == 0
                    && p["counts"]["ready"] == p["target"]
                    && p["counts"]["creating"] == 0
                    && p["counts"]["removing"] == 0
                    && p["counts"]["resetting"] == 0
            })
            .await;
        println!(
            "{pool}: target {} ready {} acquires {} reused {} reset failures {}",
            p["target"],
            p["counts"]["ready"],
            p["acquires"]["total"],
            p["counters"]["reused_total"],
            p["counters"]["reset_failures"]
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(pid);
    let (_, _, leases) = d.call(Method::GET, "/v1/leases", None).await;
    let left = leases["leases"].as_array().map_or(0, Vec::len);
    let engine = containers_of(&d.host_id).len() as u64;
    let (_, _, pools) = d.call(Method::GET, "/v1/pools", None).await;
    let accounted: u64 = pools["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["counts"]["ready"].as_u64().unwrap())
        .sum();

    println!();
    println!("| mode | cycles | errors | wall time | cycles/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| single-use (destroy + refill) | {n1} | {} | {:.1} s | {:.2} |",
        e1.len(),
        t1.as_secs_f64(),
        n1 as f64 / t1.as_secs_f64()
    );
    println!(
        "| reuse (reset + verify) | {n2} | {} | {:.1} s | {:.2} |",
        e2.len(),
        t2.as_secs_f64(),
        n2 as f64 / t2.as_secs_f64()
    );
    println!();
    println!(
        "daemon RSS: {rss_before} KiB after warm-up, {rss_mid} KiB after the single-use cycles, {rss_after} KiB at the end"
    );
    println!(
        "leases left: {left}; containers on the engine: {engine}; ready containers accounted for: {accounted}"
    );
    if persist {
        println!(
            "state store: {store_before} bytes after warm-up, {} bytes at the end",
            store_size()
        );
    }
    for e in e1.iter().chain(&e2).take(10) {
        println!("error: {e}");
    }
    if !e1.is_empty() || !e2.is_empty() {
        ok = false;
    }
    if left != 0 || engine != accounted {
        println!("FAIL: leases left or containers unaccounted for");
        ok = false;
    }
    drop(d);
    std::process::exit(if ok { 0 } else { 1 });
}
