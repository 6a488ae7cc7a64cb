//! Section 10: several engines. Three engines of the bench's own (dockerd each in its own
//! network namespace, over TCP, started by `tests/engines/engines.sh` on this same machine):
//!
//! - refill from empty to N ready on one of them and on all three, beside the raw engines'
//!   batch of N create+starts spread over the three by the same 4 workers (the daemon's
//!   default `max_concurrent_creates`, which is global);
//! - an image brought to an engine that lacks it by warmpool's copy (the Engine API's export
//!   streamed into the other's load), beside `docker save | docker load` between the same two
//!   engines over the same TCP endpoints.
//!
//! All three engines share this machine's 2 cores, so three engines are not three machines:
//! the figures show the cost of spreading and of the copy, not a cluster's throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use warmpool_e2e::{Daemon, ExtraEngines, IMAGE, Setup, engines_of, eventually, pool_yaml};

use crate::raw::{raw_create_start, raw_remove_all};
use crate::refill::fill_seconds;
use crate::{Report, row, stats};

const WORKERS: usize = 4;

fn client(engines: &ExtraEngines, name: &str) -> Docker {
    let socket = engines.engine(name).socket.display().to_string();
    Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION).expect("engine socket")
}

/// Wall time of `n` raw create+starts by [`WORKERS`] workers, the i-th on `clients[i % len]`.
async fn raw_spread(clients: &[Docker], n: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let clients = Arc::new(clients.to_vec());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (next, clients) = (next.clone(), clients.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                raw_create_start(&clients[i % clients.len()], IMAGE).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = t.elapsed().as_secs_f64();
    for c in clients.iter() {
        raw_remove_all(c).await;
    }
    took
}

/// The `docker:` section naming `names` among `engines`.
fn docker_yaml(engines: &ExtraEngines, names: &[&str]) -> String {
    let mut y = String::from("docker:\n  engines:\n");
    for n in names {
        y.push_str(&format!(
            "    - name: {n}\n      endpoint: \"{}\"\n",
            engines.engine(n).endpoint
        ));
    }
    y
}

/// Seconds from a fresh daemon's first create to its `n`-th ready container, on `names`.
async fn fill(engines: &ExtraEngines, names: &[&str], n: usize) -> f64 {
    let logdir = tempfile::tempdir().unwrap();
    let audit = logdir.path().join("audit.jsonl");
    let server = format!(
        "  audit_log: {}\n{}",
        audit.display(),
        docker_yaml(engines, names)
    );
    let mut d = Daemon::start_setup(
        &[pool_yaml(
            "r",
            &format!("min_ready: {n}\nmax_ready: {n}\nsizing: {{ policy: fixed }}"),
        )],
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await;
    let took = fill_seconds(&d, &audit, n).await;
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success());
    took
}

pub async fn engines(quick: bool, python_image: Option<&str>, r: &mut Report) {
    r.section("10. Several engines (three dockerd on this same 2-core machine)");
    let (n, reps) = if quick { (6, 1) } else { (12, 3) };
    let engines = ExtraEngines::up(3, &[], false);
    for e in ["e1", "e2", "e3"] {
        engines.load(e, IMAGE);
    }
    let clients: Vec<Docker> = ["e1", "e2", "e3"]
        .iter()
        .map(|e| client(&engines, e))
        .collect();
    let (mut raw, mut one, mut three) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        raw.push(raw_spread(&clients, n).await);
        one.push(fill(&engines, &["e1"], n).await);
        three.push(fill(&engines, &["e1", "e2", "e3"], n).await);
    }
    let (raw, one, three) = (stats(raw), stats(one), stats(three));
    r.line("| measure | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");
    r.line(&row(
        &format!("raw: {n} create+starts over 3 engines, {WORKERS} workers"),
        &raw,
        "s",
        &format!("{:.2} containers/s", n as f64 / raw.p50),
    ));
    r.line(&row(
        &format!("refill empty → {n} ready, one engine"),
        &one,
        "s",
        &format!("{:.0}% of the raw spread batch", raw.p50 / one.p50 * 100.0),
    ));
    r.line(&row(
        &format!("refill empty → {n} ready, three engines"),
        &three,
        "s",
        &format!(
            "{:.0}% of the raw spread batch; {:.2}× the one-engine fill",
            raw.p50 / three.p50 * 100.0,
            one.p50 / three.p50
        ),
    ));
    r.record("engines_refill_1_s_p50", one.p50);
    r.record("engines_refill_3_s_p50", three.p50);
    r.record("engines_raw_spread_s_p50", raw.p50);

    // The copy: the Python image when it is built (a realistic size), else the test image.
    let image = python_image.unwrap_or(IMAGE);
    if image != IMAGE {
        engines.load("e1", image);
    }
    let (mut raw_copy, mut ours, mut bytes) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..reps {
        let _ = engines.docker("e2", &["rmi", "-f", image]);
        // Over the same TCP endpoints the daemon uses.
        let (h1, h2) = (
            &engines.engine("e1").endpoint,
            &engines.engine("e2").endpoint,
        );
        let t = Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker -H {h1} save {image} | docker -H {h2} load -q"
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        raw_copy.push(t.elapsed().as_secs_f64());
        let _ = engines.docker("e2", &["rmi", "-f", image]);
        let (ms, b) = copy_by_warmpool(&engines, image).await;
        ours.push(ms / 1000.0);
        bytes = b;
    }
    let (raw_copy, ours) = (stats(raw_copy), stats(ours));
    let mib = bytes as f64 / f64::from(1 << 20);
    r.line(&row(
        &format!("raw: docker save piped to docker load, {image} ({mib:.1} MiB)"),
        &raw_copy,
        "s",
        &format!("{:.1} MiB/s", mib / raw_copy.p50),
    ));
    r.line(&row(
        &format!("warmpool's copy (export streamed into load), {image}"),
        &ours,
        "s",
        &format!(
            "{:.1} MiB/s: {:.2}× the CLI pipe's time",
            mib / ours.p50,
            ours.p50 / raw_copy.p50
        ),
    ));
    r.record("engines_copy_s_p50", ours.p50);
    r.record("engines_copy_raw_s_p50", raw_copy.p50);
}

/// A daemon whose pool runs `image`, which only e1 holds: the time and bytes of its copy to
/// e2, as `GET /v1/engines` reports them (the copy's own clock, from its first byte).
async fn copy_by_warmpool(engines: &ExtraEngines, image: &str) -> (f64, u64) {
    let server = docker_yaml(engines, &["e1", "e2"]);
    let mut d = Daemon::start_setup(
        &[format!(
            "  c:\n    image: {image}\n    min_ready: 2\n    max_ready: 2\n    image_source: copy\n"
        )],
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await;
    let copy: String = eventually(Duration::from_secs(300), "e2 got the image", || async {
        let by = engines_of(&d).await;
        let s = by["e2"]["image_copy"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.starts_with("copied").then_some(s)
    })
    .await;
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success());
    parse_copy(&copy).unwrap_or_else(|| panic!("a copy report: {copy}"))
}

/// `copied IMAGE from PEER: BYTES bytes in MS ms` → (ms, bytes).
fn parse_copy(s: &str) -> Option<(f64, u64)> {
    let tail = s.rsplit_once(": ")?.1;
    let mut w = tail.split_whitespace();
    let bytes = w.next()?.parse().ok()?;
    let ms = w.nth(2)?.parse().ok()?;
    Some((ms, bytes))
}
