//! `server.tenants`: each problem by its YAML path, and the tokens read at serve time from an
//! environment variable or a file, never from the config text.

use warmpool_config::tenants::{LEGACY_ADMIN, TokenSource};
use warmpool_config::{Config, parse};

const POOLS: &str = "pools:\n  py: { image: x }\n  go: { image: y }\n";

/// An environment of these variables alone.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn config(server: &str) -> Result<Config, String> {
    parse(&format!("server:\n{server}{POOLS}"), "t", Vec::new()).map_err(|e| e.to_string())
}

#[test]
fn a_tenant_list_is_validated_into_tenants() {
    let c = config(
        "  tenants:
    - name: team-a
      token_env: TEAM_A
      pools: [py]
      quotas: { max_leases: 10, acquires_per_s: 0.5, lease_seconds_per_hour: 36000 }
    - name: ops
      token_file: /run/secrets/ops
      admin: true
",
    )
    .unwrap();
    let t = &c.server.tenants;
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].name, "team-a");
    assert_eq!(t[0].token, TokenSource::Env("TEAM_A".into()));
    assert_eq!(t[0].pools.as_ref().unwrap().len(), 1);
    assert_eq!(t[0].quotas.max_leases, Some(10));
    assert_eq!(t[0].quotas.acquires_per_s, Some(0.5));
    assert_eq!(t[0].quotas.lease_seconds_per_hour, Some(36000));
    assert!(!t[0].admin && t[1].admin && t[1].pools.is_none());
    assert_eq!(t[1].token, TokenSource::File("/run/secrets/ops".into()));
}

#[test]
fn every_tenant_problem_is_named_by_its_path() {
    let e = config(
        "  auth_token_env: ADMIN_TOKEN
  tenants:
    - name: Team A
      token_env: X
    - name: b
    - name: c
      token_env: C
      token_file: /c
    - name: d
      token_env: D
      pools: [py, nope]
      quotas: { max_leases: 0, acquires_per_s: -1, lease_seconds_per_hour: 0 }
    - name: d
      token_env: D2
    - name: admin
      token_env: E
    - name: f
      token_env: F
      admin: true
      pools: [py]
    - token_env: G
    - name: h
      token: inline-secret
",
    )
    .unwrap_err();
    for want in [
        "server.tenants[0].name: \"Team A\": use 1-64 of a-z",
        "server.tenants[1]: needs token_env or token_file",
        "server.tenants[2]: set one of token_env and token_file, not both",
        "server.tenants[3].pools[1]: no pool is named \"nope\"",
        "server.tenants[3].quotas.max_leases: must be at least 1",
        "server.tenants[3].quotas.acquires_per_s: must be a number",
        "server.tenants[3].quotas.lease_seconds_per_hour: must be at least 1",
        "server.tenants[4].name: \"d\" another tenant has this name",
        "server.tenants[5].name: \"admin\" is taken by server.auth_token_env",
        "server.tenants[6].pools: an admin tenant may use every pool",
        "server.tenants[7].name: is required",
        "server.tenants[8]",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // The config text never holds a token: an inline one is an unknown key.
    assert!(e.contains("unknown field `token`"), "{e}");
    assert!(!e.contains("inline-secret"), "{e}");
}

#[test]
fn tokens_come_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops");
    std::fs::write(&file, "file-token-0123456789\n").unwrap();
    let c = config(&format!(
        "  auth_token_env: WPCFG_TEST_ADMIN
  tenants:
    - name: team-a
      token_env: WPCFG_TEST_TEAM_A
    - name: ops
      token_file: {}
      admin: true
",
        file.display()
    ))
    .unwrap();
    let r = c
        .tenants_with(&env(&[
            ("WPCFG_TEST_TEAM_A", "env-token-0123456789"),
            ("WPCFG_TEST_ADMIN", "legacy-token"),
        ]))
        .unwrap();
    let got: Vec<(&str, &str, bool)> = r
        .iter()
        .map(|t| (t.tenant.name.as_str(), t.token.as_str(), t.tenant.admin))
        .collect();
    assert_eq!(
        got,
        [
            (LEGACY_ADMIN, "legacy-token", true),
            ("team-a", "env-token-0123456789", false),
            ("ops", "file-token-0123456789", true),
        ]
    );
}

#[test]
fn a_missing_empty_or_shared_token_is_refused_at_serve_time() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let c = config(&format!(
        "  tenants:
    - {{ name: a, token_env: WPCFG_TEST_UNSET_VAR }}
    - {{ name: b, token_file: {} }}
    - {{ name: c, token_file: {}/absent }}
    - {{ name: d, token_env: WPCFG_TEST_SHARED_1 }}
    - {{ name: e, token_env: WPCFG_TEST_SHARED_2 }}
    - {{ name: f, token_env: WPCFG_TEST_SPACE }}
    - {{ name: g, token_env: WPCFG_TEST_SHORT }}
",
        empty.display(),
        dir.path().display()
    ))
    .unwrap();
    let e = c
        .tenants_with(&env(&[
            ("WPCFG_TEST_SHARED_1", "same-same-same-same"),
            ("WPCFG_TEST_SHARED_2", "same-same-same-same"),
            ("WPCFG_TEST_SPACE", "a b c d e f g h i j"),
            ("WPCFG_TEST_SHORT", "short"),
        ]))
        .unwrap_err();
    for want in [
        "server.tenants[0].token_env: environment variable WPCFG_TEST_UNSET_VAR is not set",
        "server.tenants[1].token_file: the token is empty",
        "server.tenants[2].token_file: cannot read",
        "server.tenants[4]: its token is also tenant \"d\"'s",
        "server.tenants[5].token_env: the token holds whitespace",
        "server.tenants[6].token_env: the token is shorter than 16 characters",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert!(
        !e.contains("same"),
        "a token never appears in a message: {e}"
    );
}

#[test]
fn an_open_listener_is_refused_unless_a_tenant_guards_it() {
    let c = config("  listen: 0.0.0.0:7070\n").unwrap();
    assert!(
        c.tenants_with(&env(&[]))
            .unwrap_err()
            .contains("not a loopback address")
    );
    let c = config(
        "  listen: 0.0.0.0:7070\n  tenants:\n    - { name: a, token_env: WPCFG_TEST_GUARD }\n",
    )
    .unwrap();
    let r = c.tenants_with(&env(&[("WPCFG_TEST_GUARD", "guard-token-0123456789")]));
    assert_eq!(r.unwrap().len(), 1);
}

#[test]
fn changing_the_tenants_needs_a_restart() {
    let a = config("  tenants:\n    - { name: a, token_env: A }\n").unwrap();
    let b =
        config("  tenants:\n    - { name: a, token_env: A, quotas: { max_leases: 1 } }\n").unwrap();
    let plan = warmpool_config::ReloadPlan::new(&a, &b);
    assert!(
        plan.restart.contains(&"server.tenants"),
        "{:?}",
        plan.restart
    );
}
