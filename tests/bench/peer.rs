//! Section 8, the peer, llm-sandbox's Docker container pool, on the same engine and the same Python
//! image, each figure beside warmpool's equivalent from section 3. The peer runs in a venv that
//! `tests/bench/peer/setup-llm-sandbox.sh` installs from PyPI; its driver is
//! `tests/bench/peer/llm_sandbox_bench.py`.

use std::path::PathBuf;

use bollard::Docker;
use serde_json::Value;

use crate::python::{PY_IMAGE, PySamples};
use crate::raw::remove_host;
use crate::{Report, stats};

const PEER_HOST: &str = "bench-peer";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run the peer's driver; `Err` says why it could not be measured.
fn run_peer(n: usize, reps: usize) -> Result<Value, String> {
    let py = std::env::var_os("LLM_SANDBOX_VENV")
        .map_or_else(|| repo().join("target/peer-venv"), PathBuf::from)
        .join("bin/python");
    if !py.exists() {
        return Err(format!(
            "{} missing: run tests/bench/peer/setup-llm-sandbox.sh",
            py.display()
        ));
    }
    let out = std::process::Command::new(py)
        .arg(repo().join("tests/bench/peer/llm_sandbox_bench.py"))
        .args(["--image", PY_IMAGE, "--host-label", PEER_HOST, "--n"])
        .arg(n.to_string())
        .arg("--reps")
        .arg(reps.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the peer's driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("peer output: {e}"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

pub async fn peer(docker: &Docker, n: usize, reps: usize, ours: &PySamples, r: &mut Report) {
    let result = tokio::task::spawn_blocking(move || run_peer(n, reps))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    // Whatever happened, none of the peer's containers stay.
    remove_host(docker, PEER_HOST).await;
    r.section("8. Peer: llm-sandbox's Docker pool, same engine, same image");
    let v = match result {
        Ok(v) => v,
        Err(why) => {
            r.not_measured("peer llm-sandbox", &why);
            r.record_value("peer", Value::Null);
            return;
        }
    };
    r.line(&format!(
        "llm-sandbox {} with `skip_environment_setup=True` and the venv pre-built in the image \
         (its setup would `pip install --upgrade pip` from inside a container with no network).\n",
        v["version"].as_str().unwrap_or("?")
    ));
    r.line("| operation | llm-sandbox median | warmpool median | warmpool is |\n|---|---|---|---|");
    // (operation, the peer's JSON field and our samples of the same, unit)
    let rows: [(&str, &str, &Vec<f64>, &str); 5] = [
        (
            "pooled session enter ↔ acquire",
            "enter_ms",
            &ours.acquire_ms,
            "ms",
        ),
        (
            "run(\"print(1)\") ↔ exec python3 -c",
            "run_ms",
            &ours.exec_ms,
            "ms",
        ),
        ("session exit ↔ release", "exit_ms", &ours.release_ms, "ms"),
        (
            "warm-up of 4 (pool start → 4 ready)",
            "warmup4_s",
            &ours.warmup4_s,
            "s",
        ),
        (
            "close() with 4 ↔ SIGTERM with 4 ready",
            "close4_s",
            &ours.close4_s,
            "s",
        ),
    ];
    if let Some((_, key, ..)) = rows.iter().find(|(_, key, ..)| floats(&v[*key]).is_empty()) {
        r.not_measured(
            "peer llm-sandbox",
            &format!("its driver returned no {key} samples"),
        );
        return;
    }
    for (name, key, our_samples, unit) in rows {
        let peer = stats(floats(&v[key])).p50;
        let ours = stats(our_samples.clone()).p50;
        let verdict = if ours <= peer {
            format!("{:.1}× faster", peer / ours)
        } else {
            format!("{:.1}× slower", ours / peer)
        };
        r.line(&format!(
            "| {name} | {peer:.3} {unit} | {ours:.3} {unit} | {verdict} |"
        ));
        r.record(&format!("peer_{key}"), peer);
        r.record(&format!("ours_{key}"), ours);
    }
    r.line(&format!(
        "\nSamples: {} enter/run/exit each side; warm-up and close: {} each side.",
        floats(&v["enter_ms"]).len(),
        floats(&v["close4_s"]).len()
    ));
}
