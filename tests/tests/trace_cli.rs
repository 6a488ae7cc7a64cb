//! `warmpool-lab trace`, through the real binary: `generate` writes a synthetic trace that the
//! same seed repeats, and `from-audit` turns a real daemon's audit log into the trace of the
//! leases it served, holds included.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use warmpool_e2e::{Daemon, lab_binary, pool_yaml};
use warmpool_lab::Trace;

fn trace(args: &[&str]) -> std::process::Output {
    Command::new(lab_binary())
        .arg("trace")
        .args(args)
        .output()
        .expect("run warmpool-lab trace")
}

#[test]
fn generate_repeats_a_shape_from_its_seed_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    for f in [&a, &b] {
        let out = trace(&[
            "generate",
            "--shape",
            "fanout",
            "--seed",
            "3",
            "--pool",
            "py",
            "-o",
            f.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("acquires over"));
    }
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_eq!(ta, tb, "the same seed writes the same trace");
    assert!(ta.starts_with("t_ms,pool,hold_ms\n"));
    let t = Trace::from_csv(ta.as_bytes()).expect("a valid trace");
    assert!(t.acquires.len() > 1000 && t.acquires.iter().all(|x| x.pool == "py"));

    let out = trace(&["generate", "--shape", "tsunami"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tsunami") && err.contains("diurnal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_audit_gives_the_leases_a_daemon_served() {
    let logdir = tempfile::tempdir().unwrap();
    let audit = logdir.path().join("audit.jsonl");
    let mut d = Daemon::start_with(
        &[pool_yaml("tr", "min_ready: 2\nmax_ready: 2\nmax_total: 4")],
        &format!("  audit_log: {}\n", audit.display()),
        &[],
    )
    .await;
    d.warm_up("tr").await;
    for _ in 0..3 {
        let l = d.acquire(json!({"pool": "tr"})).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let id = l["lease_id"].as_str().unwrap();
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, 204);
    }
    let (status, _) = d.terminate(Duration::from_secs(30));
    assert!(status.success());

    let out_path = logdir.path().join("trace.csv");
    let out = trace(&[
        "from-audit",
        audit.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let t = Trace::from_path(&out_path).expect("a valid trace");
    assert_eq!(t.acquires.len(), 3, "{t:?}");
    assert_eq!(t.acquires[0].t_ms, 0);
    for a in &t.acquires {
        assert_eq!(a.pool, "tr");
        assert!(
            (400..5_000).contains(&a.hold_ms),
            "held about 400 ms: {a:?}"
        );
    }
    assert!(t.acquires[2].t_ms >= 800, "{t:?}");

    let missing = trace(&["from-audit", "/nonexistent/audit.jsonl"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/audit.jsonl"));
}
