//! For tests only: the guest components under `plugins/`, built by this crate's build script
//! from the sources in this checkout, as constants holding their paths (`SIZING_FIXED`,
//! `TEST_GUEST_HOSTILE_SIZING`, `PY_HOSTILE_SIZING`, …). Tests use the components built in the
//! same run and never run cargo themselves. Nothing here is linked into the daemon: only
//! dev-dependencies and the end-to-end test crate depend on it.

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The Rust component with this file stem (`sizing_fixed`, `test_guest_hostile_sizing`).
///
/// # Panics
/// When no such component was built: a test naming a guest that does not exist.
pub fn component(stem: &str) -> PathBuf {
    lookup(stem)
}

/// The Python guest `plugins/test-guests/python/<module>.py`, built for `world`.
///
/// # Panics
/// When the build script does not build that module for that world (see its `PYTHON` list).
pub fn python_component(module: &str, world: &str) -> PathBuf {
    let p = lookup(&format!("py_{module}"));
    assert!(
        PYTHON_WORLDS.contains(&(module, world)),
        "{module} is not built for {world}"
    );
    p
}

fn lookup(name: &str) -> PathBuf {
    let (_, path) = ALL
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no component {name} was built"));
    PathBuf::from(path)
}
