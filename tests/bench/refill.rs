//! Sections 4 and 5: refill from empty to N ready, and SIGTERM with N ready.
//!
//! Each repetition runs the raw engine's batch first (N create+starts by 4 workers, the
//! daemon's default `max_concurrent_creates`), then warmpool's refill to N on a fresh daemon,
//! so that drift on this shared machine hits both alike. The batch of the same N is the fair
//! reference: a steady-state rate measured over 48 containers hides the ramp-up and the tail
//! every batch of 8 or 16 pays; both ratios are reported.
//!
//! warmpool's fill time comes from its own audit log, not from polling its stats (a 100 ms poll
//! added up to 100 ms to a half-second figure): from the start of the first create (its
//! `created` event's time minus the create's duration, which the event carries) to the N-th
//! `ready` event. That includes what the raw figure does not: the ready check
//! (`lifecycle.start_settle`: a container whose command exits at once is never handed out), the
//! image resolution, the labels, and the bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use serde_json::Value;
use warmpool_e2e::{Daemon, IMAGE, containers_of, eventually, pool_yaml};

use crate::raw::{raw_create_start, raw_remove_all};
use crate::{Report, row, stats};

/// Workers in the raw batch: the daemon's default `limits.max_concurrent_creates`.
const WORKERS: usize = 4;

/// Wall time of `n` raw create+starts by [`WORKERS`] workers, in seconds; removes them after.
async fn raw_batch(docker: &Docker, n: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (d, next) = (docker.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                raw_create_start(&d, IMAGE).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = t.elapsed().as_secs_f64();
    raw_remove_all(docker).await;
    took
}

/// From the audit log: seconds from the first create's start to the `n`-th `ready`, once the
/// log holds `n` of each.
fn fill_from_audit(lines: &[Value], n: usize) -> Option<f64> {
    let at = |e: &Value| humantime::parse_rfc3339(e["at"].as_str()?).ok();
    let mut starts = Vec::new();
    let mut readies = Vec::new();
    for e in lines {
        match e["kind"].as_str() {
            Some("created") => {
                let ms: u64 = e["reason"].as_str()?.strip_suffix(" ms")?.parse().ok()?;
                starts.push(at(e)? - Duration::from_millis(ms));
            }
            Some("ready") => readies.push(at(e)?),
            _ => {}
        }
    }
    if readies.len() < n || starts.is_empty() {
        return None;
    }
    readies.sort();
    let first: SystemTime = starts.into_iter().min()?;
    Some(readies[n - 1].duration_since(first).ok()?.as_secs_f64())
}

fn read_audit(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait until daemon `d` has filled pool `r` to `n` ready, and return the fill's time in
/// seconds from its audit log at `audit` (see the module doc).
pub(crate) async fn fill_seconds(d: &Daemon, audit: &std::path::Path, n: usize) -> f64 {
    d.warm_up("r").await;
    eventually(
        Duration::from_secs(10),
        "the audit log holds every create and ready of the fill",
        || {
            let lines = read_audit(audit);
            async move { fill_from_audit(&lines, n) }
        },
    )
    .await
}

/// Sections 4 and 5, `reps` repetitions each for N = 8 and 16, and for 16 once more with the
/// ready check off, to show its share. `raw4` is the steady 4-worker rate of section 1, in
/// containers per second.
pub async fn refill_and_shutdown(docker: &Docker, reps: usize, raw4: f64, r: &mut Report) {
    r.section("4. Refill and 5. Shutdown");
    r.line("| measure | n | median | p90 | p99 | vs raw |\n|---|---|---|---|---|---|");
    for (n, settle_off) in [(8u32, false), (16, false), (16, true)] {
        let (label, extra, key) = if settle_off {
            (
                " (ready check off: start_settle 0)",
                "\nlifecycle: { start_settle: 0s }",
                "_no_settle",
            )
        } else {
            ("", "", "")
        };
        let (mut fill, mut raw, mut stop, mut left) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..reps {
            raw.push(raw_batch(docker, n as usize).await);
            let logdir = tempfile::tempdir().unwrap();
            let audit = logdir.path().join("audit.jsonl");
            let mut d = Daemon::start_with(
                &[pool_yaml(
                    "r",
                    &format!("min_ready: {n}\nmax_ready: {n}\nsizing: {{ policy: fixed }}{extra}"),
                )],
                &format!("  audit_log: {}\n", audit.display()),
                &[],
            )
            .await;
            fill.push(fill_seconds(&d, &audit, n as usize).await);
            let (status, took) = d.terminate(Duration::from_secs(60));
            assert!(status.success());
            left += containers_of(&d.host_id).len();
            stop.push(took.as_secs_f64());
        }
        let (fill, raw) = (stats(fill), stats(raw));
        let rate = f64::from(n) / fill.p50;
        r.line(&row(
            &format!("raw engine: {n} create+starts, {WORKERS} workers"),
            &raw,
            "s",
            &format!("{:.2} containers/s at the median", f64::from(n) / raw.p50),
        ));
        r.line(&row(
            &format!("refill empty → {n} ready{label}"),
            &fill,
            "s",
            &format!(
                "{rate:.2} containers/s at the median: {:.0}% of the raw batch of {n}, {:.0}% of the raw steady 4-worker rate",
                raw.p50 / fill.p50 * 100.0,
                rate / raw4 * 100.0
            ),
        ));
        let stop = stats(stop);
        r.line(&row(
            &format!("SIGTERM with {n} ready → exit{label}"),
            &stop,
            "s",
            &format!("{left} containers left in all runs"),
        ));
        r.record(&format!("raw_batch_{n}{key}_s_p50"), raw.p50);
        r.record(&format!("refill_{n}{key}_s_p50"), fill.p50);
        r.record(&format!("refill_{n}{key}_vs_raw_batch"), raw.p50 / fill.p50);
        r.record(&format!("shutdown_{n}{key}_s_p50"), stop.p50);
    }
}
