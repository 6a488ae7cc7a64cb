//! Benchmarks taken side by side in one run on one engine, reported as ratios: the raw Engine
//! API ([`raw`]: create+start latency and parallel throughput), warm acquire over warmpool's
//! HTTP API at several concurrencies with and without persistence ([`warm`]), sandbox use in a
//! Python image ([`python`]), refill beside the raw engine's batch and shutdown ([`refill`]),
//! plugins in the daemon ([`plugins`]: memory, and hostile guests against the other pools), the
//! daemon's footprint, the peer llm-sandbox on the same engine and image ([`peer`]), and how the
//! costs grow from 10 to 1,000 warm containers ([`scale`]), and three engines: refill spread
//! over them and the image copy between two ([`engines`]), and runc against gVisor's runsc
//! ([`runtimes`]).
//!
//!     tests/images/build-python.sh && tests/bench/peer/setup-llm-sandbox.sh
//!     cargo build --release -p warmpool -p warmpool-e2e
//!     WARMPOOL_BIN=$PWD/target/release/warmpool ./target/release/bench [--quick] [--json FILE]
//!
//! `--plugins-only`, `--refill-only`, `--scale-only`, `--engines-only`, `--agent-only`,
//! `--tenants-only`, `--resources-only` and `--runtimes-only` run section 6b, 4, 9, 10, 11, 12,
//! 13 or 15 alone. `--hibernate-only` runs section 14 (lease hibernation on a runsc engine of its
//! own, per image), which a full run leaves out; section 15 suspends and resumes under runsc too.
//!
//! Measurements only: nothing is asserted beyond "the run worked". `--quick` is the smoke test
//! CI runs: every section, with few samples; `--strict` fails the run when a section could not
//! be measured (a missing image or peer) instead of only saying so.

mod agent;
mod engines;
mod hibernate;
mod peer;
mod plugins;
mod python;
mod raw;
mod refill;
mod resources;
mod runtimes;
mod scale;
mod tenants;
mod warm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, IMAGE, engine_and_image, pool_yaml};

use raw::{raw_create_start, raw_remove_all};

/// The table printed at the end and the JSON record written with `--json`.
#[derive(Default)]
pub struct Report {
    lines: Vec<String>,
    record: serde_json::Map<String, Value>,
    /// Sections that could not be measured, and why; `--strict` makes them fail the run.
    missing: Vec<String>,
}

impl Report {
    pub fn section(&mut self, title: &str) {
        self.lines.push(format!("\n### {title}\n"));
    }
    pub fn line(&mut self, l: &str) {
        self.lines.push(l.to_string());
    }
    pub fn record(&mut self, key: &str, v: f64) {
        self.record.insert(key.into(), json!(v));
    }
    pub fn record_value(&mut self, key: &str, v: Value) {
        self.record.insert(key.into(), v);
    }
    /// Say, in the table and in the exit status under `--strict`, that a section was not measured.
    pub fn not_measured(&mut self, what: &str, why: &str) {
        self.lines.push(format!("**Not measured:** {why}"));
        self.missing.push(format!("{what}: {why}"));
    }
}

pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn stats(mut v: Vec<f64>) -> Stats {
    let n = v.len();
    if v.is_empty() {
        v.push(f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        n,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: v.last().copied().unwrap_or(0.0),
    }
}

pub fn row(name: &str, s: &Stats, unit: &str, extra: &str) -> String {
    format!(
        "| {name} | {} | {:.3} {unit} | {:.3} {unit} | {:.3} {unit} | {extra} |",
        s.n, s.p50, s.p90, s.p99
    )
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Raw create+starts per second with `workers` in parallel, `per_worker` each; removes them.
async fn raw_rate(docker: &Docker, workers: usize, per_worker: usize) -> f64 {
    let d = Arc::new(docker.clone());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                raw_create_start(&d, IMAGE).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (workers * per_worker) as f64 / t.elapsed().as_secs_f64();
    raw_remove_all(docker).await;
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let strict = std::env::args().any(|a| a == "--strict");
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);
    engine_and_image();
    let docker = Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let mut r = Report::default();
    if std::env::args().any(|a| a == "--plugins-only") {
        // Section 6b alone, for working on the plugin host.
        plugins::plugins(quick, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--refill-only") {
        // Section 4 alone, for working on the create path; the steady rate it compares with is
        // measured first, as in a full run.
        let rate = raw_rate(&docker, 4, if quick { 4 } else { 12 }).await;
        refill::refill_and_shutdown(&docker, if quick { 1 } else { 5 }, rate, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--engines-only") {
        let py = python::image_present().then_some(python::PY_IMAGE);
        engines::engines(quick, py, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--agent-only") {
        let py = python::image_present().then_some(python::PY_IMAGE);
        agent::agent(&docker, quick, py, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--runtimes-only") {
        let py = python::image_present().then_some(python::PY_IMAGE);
        runtimes::runtimes(quick, py, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--tenants-only") {
        tenants::tenants(quick, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--resources-only") {
        resources::resources(&docker, quick, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--hibernate-only") {
        let py = python::image_present().then_some(python::PY_IMAGE);
        hibernate::hibernate(quick, py, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    if std::env::args().any(|a| a == "--scale-only") {
        scale::scale(quick, &mut r).await;
        println!("{}", r.lines.join("\n"));
        return;
    }
    r.line(&format!(
        "Run of `bench{}` on {} (engine {}).",
        if quick { " --quick" } else { "" },
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        docker
            .version()
            .await
            .ok()
            .and_then(|v| v.version)
            .unwrap_or_default()
    ));

    // 1. Raw engine: sequential create+start latency, then parallel throughput.
    let n_seq = if quick { 8 } else { 30 };
    let mut lat = Vec::new();
    for _ in 0..n_seq {
        lat.push(raw_create_start(&docker, IMAGE).await.1);
    }
    raw_remove_all(&docker).await;
    let cold = stats(lat);
    r.section("1. Raw Engine API (no CLI): create+start");
    r.line("| measure | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");
    r.line(&row(
        "create+start, one at a time",
        &cold,
        "ms",
        "the cold path warm acquires are compared with",
    ));
    r.record("raw_create_start_ms_p50", cold.p50);
    let per_worker = if quick { 4 } else { 12 };
    let mut rates = Vec::new();
    for workers in [1usize, 2, 4, 8] {
        let rate = raw_rate(&docker, workers, per_worker).await;
        r.line(&format!("| parallel create+start, {workers} worker(s) | {} | {rate:.2} containers/s | | | throughput |", workers * per_worker));
        rates.push((workers, rate));
        r.record(&format!("raw_rate_{workers}w"), rate);
    }

    // 2. Warm acquire, without and with persistence.
    let (rounds, clients): (usize, &[usize]) = if quick {
        (1, &[1, 8])
    } else {
        (6, &[1, 8, 32, 64])
    };
    let rss_warm = warm::warm_acquire(&cold, clients, rounds, false, &mut r).await;
    warm::warm_acquire(&cold, clients, rounds, true, &mut r).await;

    // 3. Sandbox use in the Python image, and 8. the peer on the same image.
    let (n_py, py_reps) = if quick { (5, 1) } else { (30, 3) };
    if python::image_present() {
        let ours = python::sandbox_use(&docker, n_py, py_reps, &mut r).await;
        peer::peer(&docker, n_py, py_reps, &ours, &mut r).await;
    } else {
        r.section("3. and 8. Python image");
        r.not_measured(
            "python image",
            &format!(
                "{} is missing; build it with tests/images/build-python.sh",
                python::PY_IMAGE
            ),
        );
    }

    // 11. The agent beside engine exec and the raw engine.
    let py = python::image_present().then_some(python::PY_IMAGE);
    agent::agent(&docker, quick, py, &mut r).await;

    // 4. Refill: empty pool to N ready, beside the raw engine's batch of N; 5. SIGTERM with
    // those N ready. Each repeated `reps` times on a fresh daemon.
    let raw4 = rates.iter().find(|(w, _)| *w == 4).unwrap().1;
    refill::refill_and_shutdown(&docker, if quick { 1 } else { 5 }, raw4, &mut r).await;

    // 6b. Plugins in the daemon: memory and containment.
    plugins::plugins(quick, &mut r).await;

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
        std::fs::copy(warmpool_test_components::component(name), &f).unwrap();
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
    r.section("7. Footprint (daemon RSS)");
    r.line("| state | RSS |\n|---|---|");
    r.line(&format!(
        "| idle (one pool, nothing warm) | {:.1} MiB |",
        rss_idle as f64 / 1024.0
    ));
    r.line(&format!(
        "| 3 wasm plugins, 20 warm containers | {:.1} MiB |",
        rss_full as f64 / 1024.0
    ));
    r.line(&format!(
        "| after the warm-acquire runs (64 warm, ~{} acquires) | {:.1} MiB |",
        rounds * 105,
        rss_warm as f64 / 1024.0
    ));
    r.record("rss_idle_kib", rss_idle as f64);
    r.record("rss_3_plugins_20_warm_kib", rss_full as f64);

    // 9. How cost grows with the number of warm containers.
    scale::scale(quick, &mut r).await;

    // 10. Several engines: refill spread over three, and the image copy between two.
    let py = python::image_present().then_some(python::PY_IMAGE);
    engines::engines(quick, py, &mut r).await;

    // 12. What tenant checks add to a warm acquire, in process.
    tenants::tenants(quick, &mut r).await;

    // 13. What a lease's own cpus and memory add to a warm acquire.
    resources::resources(&docker, quick, &mut r).await;

    // 15. runc against gVisor's runsc on one engine of the bench's own.
    let py = python::image_present().then_some(python::PY_IMAGE);
    runtimes::runtimes(quick, py, &mut r).await;

    raw_remove_all(&docker).await;
    println!("{}", r.lines.join("\n"));
    if let Some(path) = json_out {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&Value::Object(r.record)).unwrap(),
        )
        .unwrap();
    }
    if !r.missing.is_empty() {
        eprintln!("bench: not measured: {}", r.missing.join("; "));
        if strict {
            std::process::exit(1);
        }
    }
}
