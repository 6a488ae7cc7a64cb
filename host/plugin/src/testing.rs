//! For tests: build the components under `plugins/` once per test run, so every test uses real
//! guests compiled from the same source in the same run: the Rust workspace with cargo, the
//! Python guests with componentize-py (installed by `scripts/componentize-py.sh` when missing).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

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

/// The Python guest `plugins/test-guests/python/<module>.py`, built for `world`
/// (`sizing-policy`, `exhaustion-strategy`, `health-check`) once per test process.
pub fn python_component(module: &str, world: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = (module.to_string(), world.to_string());
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join(format!("plugins/target/python/{module}.wasm"));
    let run = Command::new(root.join("scripts/componentize-py.sh"))
        .args([world, module])
        .arg(root.join("plugins/test-guests/python"))
        .arg(&out)
        .output()
        .expect("run scripts/componentize-py.sh");
    assert!(
        run.status.success(),
        "building the Python guest {module} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    built.insert(key, out.clone());
    out
}
