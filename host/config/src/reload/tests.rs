//! The reload plan, by class of setting: restart ones named by their path with nothing applied,
//! a pool's live settings, its spec, its policies, and pools added and removed.

use super::*;
use PoolReload::{Added, Changed, Unchanged};

fn cfg(text: &str) -> Config {
    crate::parse(text, "t", Vec::<(String, String)>::new()).unwrap()
}

fn plan(old: &str, new: &str) -> ReloadPlan {
    ReloadPlan::new(&cfg(old), &cfg(new))
}

const BASE: &str = "server: {host_id: h}\npools:\n  a: {image: x}\n  b: {image: y}\n";

/// A setting other than the sizes changed: live, and a scale override stays.
const LIVE: PoolReload = Changed {
    policies: false,
    respec: false,
    resize: false,
};

/// A size changed: live, and a scale override is cleared.
const RESIZED: PoolReload = Changed {
    policies: false,
    respec: false,
    resize: true,
};

#[test]
fn the_same_config_changes_nothing() {
    let d = plan(BASE, BASE);
    assert!(d.restart.is_empty());
    assert!(d.removed.is_empty());
    assert_eq!(d.pools, vec![Unchanged, Unchanged]);
    assert!(!d.pools.iter().any(|p| p.builds_policies()));
}

#[test]
fn pools_added_removed_and_repoliced() {
    let new =
        "server: {host_id: h}\npools:\n  a: {image: x, sizing: {policy: fixed}}\n  c: {image: z}\n";
    let d = plan(BASE, new);
    assert_eq!(d.removed, vec!["b".to_string()]);
    assert_eq!(
        d.pools,
        vec![
            Changed {
                policies: true,
                respec: false,
                resize: false
            },
            Added
        ]
    );
    assert!(d.pools.iter().all(|p| p.builds_policies()));
    // A size change alone keeps the policies.
    let sized = "server: {host_id: h}\npools:\n  a: {image: x, min_ready: 3, max_ready: 3}\n  b: {image: y}\n";
    let d = plan(BASE, sized);
    assert_eq!(d.pools, vec![RESIZED, Unchanged]);
    assert!(!d.pools.iter().any(|p| p.builds_policies()));
}

#[test]
fn restart_only_settings_are_named() {
    let new = "server: {host_id: other, listen: 127.0.0.1:9}\nlimits: {max_containers: 9}\nplugins: {deadline: 20ms}\npools:\n  a: {image: x}\n  b: {image: y}\n";
    let d = plan(BASE, new);
    assert_eq!(
        d.restart,
        vec!["server.listen", "server.host_id", "limits", "plugins"]
    );
}

/// Every restart setting, changed alone: reported by its path, and no pool touched.
#[test]
fn each_restart_setting_is_reported_by_its_path_and_nothing_applied() {
    let base = "server: {host_id: h, state_dir: /var/lib/wp}\npools:\n  a: {image: x}\n";
    let cases: [(&str, &[&str]); 19] = [
        (
            "server: {host_id: h, state_dir: /var/lib/wp, listen: 127.0.0.1:9}",
            &["server.listen"],
        ),
        (
            "server: {host_id: g, state_dir: /var/lib/wp}",
            // The default plugin cache directory is named after the host id.
            &["server.host_id", "plugins"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/other}",
            &["server.state_dir"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, commit_interval: 50ms}",
            &["server.commit_interval"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, keep_on_shutdown: true}",
            &["server.keep_on_shutdown"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, auth_token_env: WP_TOKEN}",
            &["server.auth_token_env"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, allowed_hosts: [pool.example]}",
            &["server.allowed_hosts"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, allowed_hosts: ['*']}",
            &["server.allowed_hosts"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, max_request_bytes: 2MiB}",
            &["server.max_request_bytes/max_upload_bytes"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, max_upload_bytes: 1MiB}",
            &["server.max_request_bytes/max_upload_bytes"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, audit_log: /tmp/audit.jsonl}",
            &["server.audit_log"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, shutdown_grace: 5s}",
            &["server.shutdown_grace"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp, exec_output_bytes: 4KiB}",
            &["server.exec_output_bytes"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\nlimits: {max_concurrent_creates: 2}",
            &["limits"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\nlimits: {max_concurrent_removes: 2}",
            &["limits"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\nlimits: {sweep_interval: 5s}",
            &["limits"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\ndocker: {endpoint: 'tcp://engine:2375'}",
            &["docker"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\nplugins: {bench_after: 2}",
            &["plugins"],
        ),
        (
            "server: {host_id: h, state_dir: /var/lib/wp}\nplugins: {cache_dir: /tmp/wp-cache}",
            &["plugins"],
        ),
    ];
    for (head, paths) in cases {
        let new = format!("{head}\npools:\n  a: {{image: x}}\n");
        let d = plan(base, &new);
        assert_eq!(d.restart, paths, "{head}");
        assert_eq!(
            d.pools,
            vec![Unchanged],
            "{head}: a restart setting touched a pool"
        );
        assert!(d.removed.is_empty(), "{head}");
    }
}

/// A pool's sizes, TTLs and timings apply live: neither its policies nor its spec change. Its
/// sizes, each alone, are flagged as such: they clear a scale override, and nothing else does.
#[test]
fn pool_settings_apply_live() {
    let base = "server: {host_id: h}\npools:\n  a: {image: x}\n";
    for pool in [
        "{image: x, min_ready: 2, max_ready: 4}",
        "{image: x, max_ready: 2}",
        "{image: x, max_total: 40}",
    ] {
        let d = plan(
            base,
            &format!("server: {{host_id: h}}\npools:\n  a: {pool}\n"),
        );
        assert_eq!(d.pools, vec![RESIZED], "{pool}");
    }
    for pool in [
        "{image: x, lease: {default_ttl: 1m}}",
        "{image: x, lease: {max_ttl: 2h}}",
        "{image: x, lifecycle: {idle_timeout: 1m}}",
        "{image: x, lifecycle: {max_warm_age: 1h}}",
        "{image: x, lifecycle: {max_lifetime: 1h}}",
        "{image: x, lifecycle: {image_check_interval: 1m}}",
        "{image: x, lifecycle: {probation: 1s}}",
        "{image: x, lifecycle: {start_settle: 1s}}",
        "{image: x, exhaustion: {wait_timeout: 5s}}",
        "{image: x, reuse: {enabled: true, reset: [[rm, -rf, /tmp/w]], verify: [[test, '!', -e, /tmp/w]]}}",
    ] {
        let d = plan(
            base,
            &format!("server: {{host_id: h}}\npools:\n  a: {pool}\n"),
        );
        assert_eq!(d.pools, vec![LIVE], "{pool}");
        assert!(d.restart.is_empty() && d.removed.is_empty(), "{pool}");
    }
}

#[test]
fn a_spec_change_is_flagged() {
    let base = "server: {host_id: h}\npools:\n  a: {image: x}\n";
    for pool in [
        "{image: x2}",
        "{image: x, env: {VERSION: '2'}}",
        "{image: x, memory: 256MiB}",
        "{image: x, cmd: [sleep, '3600']}",
        "{image: x, exec: engine}",
        "{image: x, runtime: runsc}",
        "{image: x, setup: [[touch, /tmp/ready]]}",
    ] {
        let d = plan(
            base,
            &format!("server: {{host_id: h}}\npools:\n  a: {pool}\n"),
        );
        assert_eq!(
            d.pools,
            vec![Changed {
                policies: false,
                respec: true,
                resize: false
            }],
            "{pool}"
        );
    }
    // A spec and a size changed together: both applied, the policies kept.
    let d = plan(
        base,
        "server: {host_id: h}\npools:\n  a: {image: x2, min_ready: 2, max_ready: 2}\n",
    );
    assert_eq!(
        d.pools,
        vec![Changed {
            policies: false,
            respec: true,
            resize: true
        }]
    );
}

#[test]
fn a_policy_change_is_flagged() {
    let base = "server: {host_id: h}\npools:\n  a: {image: x}\n";
    for pool in [
        "{image: x, sizing: {policy: fixed}}",
        "{image: x, sizing: {cooldown: 5s}}",
        "{image: x, exhaustion: {strategy: fail}}",
        "{image: x, health: {cmd: [true]}}",
        "{image: x, plugins: {sizing: {path: /p/sizing.wasm}}}",
    ] {
        let d = plan(
            base,
            &format!("server: {{host_id: h}}\npools:\n  a: {pool}\n"),
        );
        assert_eq!(
            d.pools,
            vec![Changed {
                policies: true,
                respec: false,
                resize: false
            }],
            "{pool}"
        );
        assert!(d.pools[0].builds_policies());
    }
}

#[test]
fn pools_are_matched_by_name_whatever_their_order() {
    let d = plan(
        BASE,
        "server: {host_id: h}\npools:\n  c: {image: z}\n  b: {image: y}\n",
    );
    assert_eq!(d.pools, vec![Added, Unchanged]);
    assert_eq!(d.removed, vec!["a".to_string()]);
    let d = plan(
        "server: {host_id: h}\npools:\n  a: {image: x}\n  b: {image: y}\n  c: {image: z}\n",
        "server: {host_id: h}\npools:\n  b: {image: y}\n",
    );
    assert_eq!(d.pools, vec![Unchanged]);
    assert_eq!(d.removed, vec!["a".to_string(), "c".to_string()]);
}
