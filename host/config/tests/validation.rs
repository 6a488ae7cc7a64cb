//! Config validation: every problem is reported at once, each with its YAML path.

use std::time::Duration;

use warmpool_config::{HealthPlan, parse};
use warmpool_core::BuiltinExhaustion;

fn no_env() -> Vec<(String, String)> {
    vec![]
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let c = parse("pools:\n  py:\n    image: python:3.12\n", "t", no_env()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7070");
    assert!(!c.server.host_id.is_empty());
    let p = &c.pools[0];
    assert_eq!(p.pool.name, "py");
    assert_eq!(
        (p.pool.min_ready, p.pool.max_ready, p.pool.max_total),
        (1, 1, 11)
    );
    assert_eq!(p.pool.spec.network, "none");
    assert!(p.pool.spec.init && p.pool.spec.no_new_privileges);
    assert_eq!(p.pool.spec.cap_drop, vec!["ALL"]);
    assert_eq!(p.pool.spec.pids_limit, Some(256));
    assert_eq!(p.pool.spec.memory, Some(512 << 20));
    assert_eq!(p.pool.spec.cmd, vec!["sleep", "infinity"]);
    assert_eq!(p.exhaustion, BuiltinExhaustion::Cold);
    assert_eq!(p.pool.wait_timeout, Duration::from_secs(30));
    assert!(p.health.is_none());
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let yaml = r#"
server:
  listen: "not an address"
  colour: blue
limits:
  max_containers: 2
pools:
  python:
    image: python:3.12
    min_ready: 5
    max_ready: 3
    lease: { default_ttl: 3x }
    memory: lots
  Bad Name:
    image: x
  other:
    image: y
    unknown_key: 1
    lease: { max_ttl: 1m, also_unknown: 2 }
    min_ready: 9
    max_ready: 1
colour: red
"#;
    let err = parse(yaml, "t.yaml", no_env()).unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has("pools.python.min_ready: must be ≤ max_ready (5 > 3)"),
        "{lines:#?}"
    );
    assert!(
        has("pools.python.lease.default_ttl: invalid duration \"3x\""),
        "{lines:#?}"
    );
    assert!(
        has("pools.python.memory: invalid size \"lots\""),
        "{lines:#?}"
    );
    assert!(has("pools.Bad Name: pool names use"), "{lines:#?}");
    assert!(
        has("pools.other.unknown_key: unknown field `unknown_key`"),
        "{lines:#?}"
    );
    assert!(has("server.colour: unknown field `colour`"), "{lines:#?}");
    assert!(has("colour: unknown key"), "{lines:#?}");
    assert!(err.to_string().starts_with("t.yaml: "), "{err}");
}

#[test]
fn nested_type_errors_name_the_nested_path() {
    let err = parse(
        "pools:\n  p:\n    image: x\n    lease: { max_ttl: [1] }\n",
        "t",
        no_env(),
    )
    .unwrap_err();
    assert_eq!(err.problems[0].path, "pools.p.lease.max_ttl", "{err}");
    let err = parse(
        "pools:\n  p:\n    image: x\n    cmd: {a: 1}\n",
        "t",
        no_env(),
    )
    .unwrap_err();
    assert!(
        err.problems[0].to_string().starts_with("pools.p.cmd: "),
        "{err}"
    );
    assert!(
        err.problems[0]
            .message
            .contains("a string (run by sh -c) or a list of arguments"),
        "{err}"
    );
}

#[test]
fn env_overrides_scalars() {
    let env = vec![
        ("WARMPOOL_POOLS__PY__MIN_READY".to_string(), "2".to_string()),
        ("WARMPOOL_POOLS__PY__MAX_READY".to_string(), "4".to_string()),
        ("WARMPOOL_SERVER__HOST_ID".to_string(), "box-7".to_string()),
    ];
    let c = parse("pools:\n  py:\n    image: x\n", "t", env).unwrap();
    assert_eq!(c.server.host_id, "box-7");
    assert_eq!(
        (c.pools[0].pool.min_ready, c.pools[0].pool.max_ready),
        (2, 4)
    );
}

#[test]
fn health_and_setup_commands_accept_strings_and_lists() {
    let yaml = "pools:\n  p:\n    image: x\n    setup: [\"echo hi > /tmp/x\", [touch, /tmp/y]]\n    health: { cmd: [true], interval: 2s }\n";
    let c = parse(yaml, "t", no_env()).unwrap();
    let p = &c.pools[0];
    assert_eq!(p.pool.spec.setup[0], vec!["sh", "-c", "echo hi > /tmp/x"]);
    assert_eq!(p.pool.spec.setup[1], vec!["touch", "/tmp/y"]);
    assert!(matches!(&p.health, Some(HealthPlan::Exec(e)) if e.argv == ["true"]));
    assert_eq!(p.pool.health_interval, Duration::from_secs(2));
}

#[test]
fn an_open_listener_needs_a_token() {
    let c = parse(
        "server: { listen: \"0.0.0.0:7070\" }\npools:\n  p: { image: x }\n",
        "t",
        no_env(),
    )
    .unwrap();
    let e = c.tenants().unwrap_err();
    assert!(
        e.starts_with("server.listen: 0.0.0.0:7070 is not a loopback address"),
        "{e}"
    );
}

#[test]
fn shipped_examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            parse(&text, &path.display().to_string(), no_env()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2, "expected the example configs, found {n}");
}

#[test]
fn plugin_entries_flatten_their_config_and_check_limits() {
    let yaml = r#"
plugins: { deadline: 30ms, max_memory: 32m, bench_after: 3 }
pools:
  p:
    image: x
    plugins:
      sizing: { path: plugins/predictive.wasm, config: { headroom: 2, alpha: 0.5, name: fast, cmd: [sh, -c, "true"] } }
      health: { path: /abs/h.wasm }
"#;
    let c = parse(yaml, "t", no_env()).unwrap();
    assert_eq!(c.plugins.deadline, Duration::from_millis(30));
    assert_eq!(c.plugins.max_memory, 32 << 20);
    assert_eq!(c.plugins.bench_after, 3);
    let s = c.pools[0].plugins.sizing.as_ref().unwrap();
    assert_eq!(s.path.to_str(), Some("plugins/predictive.wasm"));
    let get = |k: &str| {
        s.config
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("headroom"), Some("2"));
    assert_eq!(get("alpha"), Some("0.5"));
    assert_eq!(get("name"), Some("fast"));
    assert_eq!(get("cmd"), Some(r#"["sh","-c","true"]"#));
    assert!(c.pools[0].plugins.exhaustion.is_none());

    let err = parse("plugins: { deadline: 1h }\npools:\n  p:\n    image: x\n    plugins: { sizing: { file: x.wasm } }\n", "t", no_env()).unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l
            .starts_with("plugins.deadline: \"1h\" is out of range: give between 10ms and 10s")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pools.p.plugins.sizing.file: unknown field `file`")),
        "{lines:#?}"
    );
}

#[test]
fn state_dir_and_commit_interval_are_validated() {
    let ok = parse(
        "server:\n  state_dir: /var/lib/warmpool\n  commit_interval: 50ms\npools:\n  py:\n    image: python:3.12\n",
        "t",
        no_env(),
    )
    .unwrap();
    assert_eq!(
        ok.server.state_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/warmpool"))
    );
    assert_eq!(ok.manager.commit_interval, Duration::from_millis(50));
    let none = parse("pools:\n  py:\n    image: python:3.12\n", "t", no_env()).unwrap();
    assert!(none.server.state_dir.is_none(), "persistence is opt-in");
    assert_eq!(none.manager.commit_interval, Duration::from_millis(20));

    let err = parse(
        "server:\n  state_dir: \"\"\n  commit_interval: 5s\npools:\n  py:\n    image: python:3.12\n",
        "t",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.commit_interval"), "{err}");
    assert!(err.contains("server.state_dir"), "{err}");

    let err = parse(
        "server:\n  keep_on_shutdown: true\npools:\n  py:\n    image: python:3.12\n",
        "t",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("server.keep_on_shutdown: needs server.state_dir"),
        "{err}"
    );
}

#[test]
fn reuse_refuses_capabilities_no_scrub_can_undo() {
    let yaml = r#"
pools:
  r:
    image: busybox
    cap_add: [CHOWN, sys_admin, CAP_NET_ADMIN]
    reuse: { enabled: true, reset: ["true"], verify: ["true"] }
  ok:
    image: busybox
    cap_add: [SYS_ADMIN]
"#;
    let err = parse(yaml, "t", no_env()).unwrap_err().to_string();
    assert!(err.contains("pools.r.cap_add[1]"), "{err}");
    assert!(err.contains("pools.r.cap_add[2]"), "{err}");
    assert!(!err.contains("pools.r.cap_add[0]"), "{err}");
    assert!(
        !err.contains("pools.ok"),
        "without reuse it is the operator's call: {err}"
    );
}

#[test]
fn allowed_hosts_are_names_or_name_port_and_each_bad_entry_is_named() {
    let ok = parse(
        "server:\n  allowed_hosts: [pool.internal, \"Box.Example:9000\", \"[fe80::1]:7070\", \"[::2]\", \"10.0.0.5\"]\npools:\n  p: { image: x }\n",
        "t",
        no_env(),
    )
    .unwrap();
    let hosts: Vec<(String, Option<u16>)> = ok
        .server
        .allowed_hosts
        .iter()
        .map(|h| (h.name.clone(), h.port))
        .collect();
    assert_eq!(
        hosts,
        vec![
            ("pool.internal".to_string(), None),
            ("box.example".to_string(), Some(9000)),
            ("[fe80::1]".to_string(), Some(7070)),
            ("[::2]".to_string(), None),
            ("10.0.0.5".to_string(), None),
        ]
    );
    assert!(!ok.server.allow_any_host);
    // None by default: the daemon's own names only.
    let none = parse("pools:\n  p: { image: x }\n", "t", no_env()).unwrap();
    assert!(none.server.allowed_hosts.is_empty() && !none.server.allow_any_host);
    // `*` switches the check off, explicitly.
    let any = parse(
        "server:\n  allowed_hosts: [\"*\"]\npools:\n  p: { image: x }\n",
        "t",
        no_env(),
    )
    .unwrap();
    assert!(any.server.allow_any_host);

    let err = parse(
        "server:\n  allowed_hosts: [\"\", \"http://x.example/\", \"x.example:0\", \"x.example:99999\", \"x.example:\", \"::1\", \"*.example\", ok.example, \"a b\"]\npools:\n  p: { image: x }\n",
        "t",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    for i in [0, 1, 2, 3, 4, 5, 6, 8] {
        assert!(
            err.contains(&format!("server.allowed_hosts[{i}]: ")),
            "{i}: {err}"
        );
    }
    assert!(!err.contains("server.allowed_hosts[7]"), "{err}");
    assert!(err.contains("port"), "{err}");
    let not_a_list = parse(
        "server:\n  allowed_hosts: pool.internal\npools:\n  p: { image: x }\n",
        "t",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    assert!(not_a_list.contains("server.allowed_hosts"), "{not_a_list}");
}
