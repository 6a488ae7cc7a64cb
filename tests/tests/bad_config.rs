//! A bad config is rejected with every problem and its YAML path, by `validate` and by `serve`,
//! before any container exists; an open listener without a token is refused.

use std::process::Command;

use warmpool_e2e::{binary, containers_of};

fn run(args: &[&str], yaml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(binary())
        .args(args)
        .arg("-c")
        .arg(&cfg)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const BAD: &str = "server:\n  host_id: e2e-badconfig\npools:\n  python:\n    image: x\n    min_ready: 5\n    max_ready: 3\n    lease: { default_ttl: soon }\n    colour: red\n";

#[test]
fn validate_lists_every_problem_with_its_path() {
    let (ok, _out, err) = run(&["validate"], BAD, &[]);
    assert!(!ok, "validate accepted a bad config");
    assert!(
        err.contains("pools.python.colour: unknown field `colour`"),
        "{err}"
    );
    let (ok, _out, err) = run(
        &["validate"],
        "pools:\n  python:\n    image: x\n    min_ready: 5\n    max_ready: 3\n    lease: { default_ttl: soon }\n",
        &[],
    );
    assert!(!ok);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("pools.python.min_ready: must be ≤ max_ready (5 > 3)"),
        "{err}"
    );
    assert!(
        err.contains("pools.python.lease.default_ttl: invalid duration \"soon\""),
        "{err}"
    );
}

#[test]
fn validate_summarises_a_good_config() {
    let (ok, out, err) = run(
        &["validate"],
        "pools:\n  py:\n    image: python:3.12\n    min_ready: 2\n    max_ready: 4\n",
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("ok, 1 pool(s)"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("py ") && l.contains("python:3.12")),
        "{out}"
    );
    assert!(out.contains("leases not persisted"), "{out}");
    let (ok, out, err) = run(
        &["validate"],
        "server:\n  state_dir: /var/lib/warmpool\npools:\n  py:\n    image: python:3.12\n",
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("leases persisted in /var/lib/warmpool (group commit every 20ms)"),
        "{out}"
    );
}

#[test]
fn serve_refuses_a_bad_config_before_creating_anything() {
    let (ok, _out, err) = run(&["serve"], BAD, &[]);
    assert!(!ok, "serve started on a bad config");
    assert!(err.contains("pools.python.min_ready"), "{err}");
    assert!(containers_of("e2e-badconfig").is_empty());
}

#[test]
fn serve_refuses_an_open_listener_without_a_token() {
    let yaml =
        "server:\n  listen: 0.0.0.0:0\n  host_id: e2e-opentoken\npools:\n  p: { image: x }\n";
    let (ok, _out, err) = run(&["serve"], yaml, &[]);
    assert!(!ok);
    assert!(err.contains("not a loopback address"), "{err}");
    let yaml = "server:\n  listen: 127.0.0.1:0\n  host_id: e2e-opentoken\n  auth_token_env: E2E_UNSET_TOKEN_VAR\npools:\n  p: { image: x }\n";
    let (ok, _out, err) = run(&["serve"], yaml, &[]);
    assert!(!ok);
    assert!(err.contains("E2E_UNSET_TOKEN_VAR is not set"), "{err}");
}
