//! The plugin template in examples/ builds with stock cargo and passes `warmpool plugin check`,
//! so the README's "Write a plugin" guide works as written.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_template_builds_and_checks() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/plugin-template");
    // Share the plugin workspace's build directory: the SDK and wit-bindgen are built once.
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "template build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/cold_aware.wasm");
    let out = Command::new(warmpool_e2e::binary())
        .args([
            "plugin",
            "check",
            "--world",
            "sizing",
            "--config",
            "per_cold=3",
        ])
        .arg(&wasm)
        .output()
        .unwrap();
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
    let out = Command::new(warmpool_e2e::binary())
        .args([
            "plugin", "check", "--world", "sizing", "--config", "speed=3",
        ])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"speed\""));
}
