//! `pools.<name>.runtime`: the OCI runtime a pool's containers run under (gVisor's `runsc`),
//! by the name engines register it under. A bad name is an error naming its YAML path; a pool
//! without one keeps the fingerprint it had before the setting existed.

use warmpool_config::parse;

fn pool(yaml_pool: &str) -> Result<warmpool_config::Config, Vec<String>> {
    parse(&format!("pools: {{ p: {yaml_pool} }}\n"), "t.yaml", vec![])
        .map_err(|e| e.problems.iter().map(ToString::to_string).collect())
}

#[test]
fn a_runtime_is_read_and_goes_to_the_spec() {
    let c = pool("{ image: x, runtime: runsc }").unwrap();
    assert_eq!(c.pools[0].pool.spec.runtime.as_deref(), Some("runsc"));
    let c = pool("{ image: x, runtime: io.containerd.runsc.v1 }").unwrap();
    assert_eq!(
        c.pools[0].pool.spec.runtime.as_deref(),
        Some("io.containerd.runsc.v1")
    );
    let c = pool("{ image: x }").unwrap();
    assert_eq!(c.pools[0].pool.spec.runtime, None, "the engine's default");
}

#[test]
fn a_bad_runtime_name_is_an_error_at_its_path() {
    for bad in ["''", "'-x'", "'run sc'", "'runsc;rm'", "'../runsc'", "'é'"] {
        let problems = pool(&format!("{{ image: x, runtime: {bad} }}")).unwrap_err();
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        assert!(
            problems[0].contains("pools.p.runtime"),
            "{bad}: {problems:?}"
        );
    }
    let long = "r".repeat(129);
    let problems = pool(&format!("{{ image: x, runtime: {long} }}")).unwrap_err();
    assert!(problems[0].contains("pools.p.runtime") && problems[0].contains("129 bytes"));
    let problems = pool("{ image: x, runtime: [runsc] }").unwrap_err();
    assert!(problems[0].contains("runtime"), "{problems:?}");
}

#[test]
fn no_runtime_leaves_the_fingerprint_as_it_was() {
    let without = pool("{ image: x }").unwrap().pools[0].pool.spec.clone();
    let json = serde_json::to_value(&without).unwrap();
    assert!(
        json.get("runtime").is_none(),
        "a spec without a runtime serialises as before the setting existed: {json}"
    );
    let with = pool("{ image: x, runtime: runsc }").unwrap().pools[0]
        .pool
        .spec
        .clone();
    assert_ne!(
        without.fingerprint("sha256:a"),
        with.fingerprint("sha256:a"),
        "a container of another runtime is not re-adopted"
    );
}
