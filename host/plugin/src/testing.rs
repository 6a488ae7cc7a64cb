//! For tests: build the components under `plugins/` once per test run, so every test uses real
//! guests compiled from the same source in the same run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `plugins/target/wasm32-wasip2/release`, after building the plugin workspace once.
pub fn plugins_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&root)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("run cargo build for plugins/");
        assert!(
            out.status.success(),
            "building plugins/ failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        root.join("target/wasm32-wasip2/release")
    })
    .clone()
}

/// The built component `name` (file stem, e.g. `sizing_fixed`).
pub fn component(name: &str) -> PathBuf {
    let p = plugins_dir().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}
