//! Section 3, end-to-end sandbox use in the Python image: acquire, exec `python3 -c 'print(1)'`,
//! release over warmpool's HTTP API, beside a raw Engine API exec of the same command in an
//! already-running container. The same daemon lifecycle also gives warmpool's side of the peer
//! comparison: warm-up of 4, and SIGTERM with 4 ready.

use std::time::{Duration, Instant};

use bollard::Docker;
use reqwest::Method;
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of};

use crate::raw::{raw_create_start, raw_exec, raw_remove_all};
use crate::{Report, row, stats};

/// Built by `tests/images/build-python.sh` (debootstrap + docker import).
pub const PY_IMAGE: &str = "warmpool-test/python:latest";

/// warmpool's samples in the Python image, reused for the peer comparison.
pub struct PySamples {
    pub warmup4_s: Vec<f64>,
    pub acquire_ms: Vec<f64>,
    pub exec_ms: Vec<f64>,
    pub release_ms: Vec<f64>,
    pub close4_s: Vec<f64>,
}

pub fn image_present() -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", PY_IMAGE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn py_pool() -> String {
    format!(
        "  py:\n    image: {PY_IMAGE}\n    min_ready: 4\n    max_ready: 4\n    max_total: 8\n    \
         sizing: {{ policy: fixed }}\n    exhaustion: {{ strategy: wait, wait_timeout: 60s }}\n"
    )
}

/// Start a daemon with the Python pool; the seconds until 4 are ready.
async fn start_py() -> (Daemon, f64) {
    let t0 = Instant::now();
    let d = Daemon::start_with(&[py_pool()], "", &[]).await;
    d.wait_pool("py", Duration::from_secs(120), |p| {
        p["counts"]["ready"] == 4
    })
    .await;
    (d, t0.elapsed().as_secs_f64())
}

/// SIGTERM with 4 ready (and nothing else going on); the seconds until exit.
async fn stop_py(mut d: Daemon) -> f64 {
    d.wait_pool("py", Duration::from_secs(120), |p| {
        p["counts"]["ready"] == 4 && p["counts"]["removing"] == 0 && p["counts"]["creating"] == 0
    })
    .await;
    let (status, took) = d.terminate(Duration::from_secs(60));
    assert!(status.success() && containers_of(&d.host_id).is_empty());
    took.as_secs_f64()
}

pub async fn sandbox_use(docker: &Docker, n: usize, reps: usize, r: &mut Report) -> PySamples {
    // The reference: the same exec through the Engine API in a container that already runs.
    let (id, _) = raw_create_start(docker, PY_IMAGE).await;
    let mut raw = Vec::new();
    for _ in 0..n {
        let (out, ms) = raw_exec(docker, &id, &["python3", "-c", "print(1)"]).await;
        assert_eq!(out.trim(), "1");
        raw.push(ms);
    }
    raw_remove_all(docker).await;
    let raw = stats(raw);
    // warmpool hands out a fresh container each time, so its exec is the container's first: the
    // same first exec through the raw API separates that cost from warmpool's own.
    let mut first = Vec::new();
    for _ in 0..n {
        let (id, _) = raw_create_start(docker, PY_IMAGE).await;
        first.push(
            raw_exec(docker, &id, &["python3", "-c", "print(1)"])
                .await
                .1,
        );
    }
    raw_remove_all(docker).await;
    let first = stats(first);

    let (d, first_warmup) = start_py().await;

    let (mut acq, mut exe, mut rel, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        // Warm use on a quiet engine: wait (untimed) until the replacement of the last
        // sandbox is made, so the exec does not share the engine with a create, as the raw
        // reference does not.
        d.wait_pool("py", Duration::from_secs(60), |p| {
            p["counts"]["ready"] == 4
                && p["counts"]["creating"] == 0
                && p["counts"]["removing"] == 0
        })
        .await;
        let t = Instant::now();
        let (st, _, lease) = d
            .call(Method::POST, "/v1/leases", Some(json!({"pool": "py"})))
            .await;
        assert!(st.is_success(), "{lease}");
        let a = t.elapsed();
        let id = lease["lease_id"].as_str().unwrap();
        let out = d
            .exec(id, json!({"cmd": ["python3", "-c", "print(1)"]}))
            .await;
        assert_eq!(out["stdout"], "1\n", "{out}");
        let e = t.elapsed();
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert!(st.is_success());
        let done = t.elapsed();
        acq.push(a.as_secs_f64() * 1000.0);
        exe.push((e - a).as_secs_f64() * 1000.0);
        rel.push((done - e).as_secs_f64() * 1000.0);
        total.push(done.as_secs_f64() * 1000.0);
    }
    let (mut warmup4_s, mut close4_s) = (vec![first_warmup], vec![stop_py(d).await]);
    for _ in 1..reps {
        let (d, w) = start_py().await;
        warmup4_s.push(w);
        close4_s.push(stop_py(d).await);
    }

    let (a, e, rl, t) = (
        stats(acq.clone()),
        stats(exe.clone()),
        stats(rel.clone()),
        stats(total),
    );
    r.section("3. End-to-end sandbox use, Python image (python3 -c 'print(1)')");
    r.line("| measure | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");
    r.line(&row(
        "raw Engine API exec in a running container",
        &raw,
        "ms",
        "the reference",
    ));
    r.line(&row("warmpool acquire (HTTP)", &a, "ms", ""));
    r.line(&row(
        "warmpool exec (HTTP → Engine API)",
        &e,
        "ms",
        &format!(
            "{:.2}× the raw exec, {:.2}× the raw first exec",
            e.p50 / raw.p50,
            e.p50 / first.p50
        ),
    ));
    r.line(&row(
        "warmpool release (HTTP; removal runs after)",
        &rl,
        "ms",
        "",
    ));
    r.line(&row(
        "warmpool acquire + exec + release",
        &t,
        "ms",
        &format!("{:.2}× the raw exec alone", t.p50 / raw.p50),
    ));
    r.record("python_raw_exec_ms_p50", raw.p50);
    r.record("python_raw_first_exec_ms_p50", first.p50);
    r.record("python_warmpool_exec_ms_p50", e.p50);
    r.record("python_warmpool_total_ms_p50", t.p50);
    PySamples {
        warmup4_s,
        acquire_ms: acq,
        exec_ms: exe,
        release_ms: rel,
        close4_s,
    }
}
