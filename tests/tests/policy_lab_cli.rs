//! The policy lab through its real binary: `warmpool-lab simulate` runs built-in and wasm sizing
//! policies over a trace (table, JSON, SVG; the same seed, the same figures; bad input refused
//! with a reason), and `warmpool-lab replay` drives a real daemon on the real engine with a
//! trace and reads back what the pool's own figures say it cost. The daemon's own binary has
//! none of the lab's commands.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use warmpool_e2e::{Daemon, binary, lab_binary, pool_yaml};
use warmpool_lab::{Acquire, Trace};
use warmpool_test_components::component;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn lab(args: &[&str]) -> Output {
    Command::new(lab_binary())
        .args(args)
        .output()
        .expect("run warmpool-lab")
}

#[test]
fn the_daemon_has_none_of_the_lab_commands() {
    for cmd in ["simulate", "replay", "trace"] {
        let out = Command::new(binary())
            .arg(cmd)
            .output()
            .expect("run warmpool");
        assert!(!out.status.success(), "warmpool {cmd} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unrecognized subcommand"), "{cmd}: {err}");
    }
}

#[test]
fn simulate_compares_builtin_and_wasm_policies_repeatably() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("lab.svg");
    let predictive = component("sizing_predictive");
    let config = repo("examples/lab.yaml");
    let trace = repo("examples/traces/fanout.csv");
    let args = [
        "simulate",
        "-c",
        config.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--until-s",
        "3600",
        "--policy",
        "builtin:fixed:4",
        "--policy",
        "builtin:adaptive",
        "--policy",
        predictive.to_str().unwrap(),
        "--create-ms",
        "400,1500",
        "--seed",
        "3",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ];
    let out = lab(&args);
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ps = doc["policies"].as_array().unwrap();
    assert_eq!(ps.len(), 3);
    let acquires = ps[0]["acquires"].as_u64().unwrap();
    assert!(acquires > 50, "{doc}");
    for p in ps {
        assert_eq!(p["acquires"], acquires, "every policy sees the same trace");
        let sum: u64 = ["warm", "waited", "cold", "rejected"]
            .iter()
            .map(|k| p[k].as_u64().unwrap())
            .sum();
        assert_eq!(sum, acquires, "{p}");
        assert!(p["idle_container_seconds"].as_f64().unwrap() > 0.0);
    }
    // The wasm component answered from the real plugin host, without a failure.
    assert_eq!(ps[2]["plugin"]["state"], "active", "{}", ps[2]);
    assert_eq!(ps[2]["plugin"]["failures"], 0);
    assert!(ps[2]["plugin"]["calls"].as_u64().unwrap() > 10);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("builtin:adaptive"));

    let again = lab(&args);
    let doc2: Value = serde_json::from_slice(&again.stdout).unwrap();
    // Plugin call counts aside (the host's own), the figures repeat exactly.
    let strip = |mut d: Value| {
        for p in d["policies"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("plugin");
        }
        d
    };
    assert_eq!(
        strip(doc),
        strip(doc2),
        "the same seed gives the same figures"
    );

    // The table names every policy.
    let table = lab(&args[..args.len() - 3]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("hit rate") && text.contains("sizing_predictive.wasm"),
        "{text}"
    );
}

#[test]
fn simulate_refuses_bad_input_with_reasons() {
    let config = repo("examples/lab.yaml");
    let trace = repo("examples/traces/poisson.csv");
    let base = [
        "simulate",
        "-c",
        config.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--policy", "builtin:magic"], "expected builtin:fixed"),
        (&["--policy", "builtin:fixed:lots"], "not a number"),
        (&["--policy", "/nonexistent/p.wasm"], "no such file"),
        (&["--create-ms", "900,100"], "below the p50"),
        (&["--create-ms", "fast"], "P50,P99"),
        (&["--speed", "0"], "positive"),
        // Two hours slowed a thousand times would be simulated for hours: refused.
        (&["--speed", "0.001"], "days"),
        (&["--pool", "nope"], "no such pool"),
    ];
    for (extra, want) in cases {
        let out = lab(&[&base[..], extra].concat());
        assert!(!out.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "t_ms,pool,hold_ms\n5,default,1\n1,default,1\n").unwrap();
    let out = lab(&[
        "simulate",
        "-c",
        config.to_str().unwrap(),
        "--trace",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 3"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_drives_a_real_daemon_and_reads_its_cost() {
    let d = Daemon::start(&[pool_yaml(
        "default",
        "min_ready: 2\nmax_ready: 4\nmax_total: 8\nexhaustion: {strategy: cold}",
    )])
    .await;
    d.warm_up("default").await;
    // 12 acquires over 6 s, each held 1 s: at most 2 at once, within the 2 kept ready.
    let t = Trace {
        acquires: (0..12)
            .map(|i| Acquire {
                t_ms: i * 500,
                pool: "default".into(),
                hold_ms: 1_000,
            })
            .collect(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.csv");
    t.to_csv(std::fs::File::create(&file).unwrap()).unwrap();
    let out = tokio::task::spawn_blocking({
        let (url, file) = (d.url.clone(), file.clone());
        move || {
            lab(&[
                "replay",
                "--url",
                &url,
                "--trace",
                file.to_str().unwrap(),
                "--json",
            ])
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &doc["outcome"];
    assert_eq!(o["acquires"], 12, "{doc}");
    assert_eq!(o["rejected"], 0, "{doc}");
    assert_eq!(doc["transport_errors"], 0, "{doc}");
    // At least one ready container most of the replay, never more than max_ready (4): the
    // daemon's own meter, read before and after.
    let (idle, span) = (
        o["idle_container_seconds"].as_f64().unwrap(),
        o["span_s"].as_f64().unwrap(),
    );
    assert!(
        span >= 6.5 && idle > 2.0 && idle <= 4.0 * span + 0.5,
        "{doc}"
    );
    assert!(o["creates"].as_u64().unwrap() >= 10, "{doc}");
    assert_eq!(d.pool("default").await["counts"]["leased"], 0);
}
