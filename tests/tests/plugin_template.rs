//! The plugin templates in examples/ — Rust, built with stock cargo, and Python, built with
//! componentize-py — build and pass `warmpool plugin check`, so the guides work as written.

use std::path::PathBuf;
use std::process::Command;

use warmpool_e2e::plugin_check;

/// Build the Rust template with stock cargo; its component.
fn rust_template() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/plugin-template");
    // Share the plugin workspace's build directory: the SDK and wit-bindgen are built once.
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        // Built as its user builds it: not with the lints scripts/test.sh puts on the
        // workspace's own crates (and the same flags as the plugins' build of that directory).
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "template build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("wasm32-wasip2/release/cold_aware.wasm")
}

#[test]
fn the_template_builds_and_checks() {
    let wasm = rust_template();
    let out = plugin_check("sizing", &["per_cold=3"], &wasm);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("a valid sizing-policy component"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cold-aware: 0 cold acquires in 60000 ms"),
        "{stdout}"
    );
    let out = plugin_check("sizing", &["speed=3"], &wasm);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"speed\""));
}

/// The Python template builds with its script (componentize-py, installed on first use),
/// passes `plugin check`, and answers every sample exactly as the Rust template does.
#[test]
fn the_python_template_builds_checks_and_agrees_with_the_rust_one() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("plugins/target/python/cold_aware.wasm");
    let out = Command::new(root.join("examples/python-plugin/build.sh"))
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python template build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers = |wasm: &std::path::Path| {
        let out = plugin_check("sizing", &["per_cold=3"], wasm);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter(|l| l.contains("→"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let py = answers(&wasm);
    assert!(!py.is_empty());
    let rust = answers(&rust_template());
    assert_eq!(py, rust, "the two templates disagree");

    let out = plugin_check("sizing", &["speed=3"], &wasm);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting 'speed'"));
}
