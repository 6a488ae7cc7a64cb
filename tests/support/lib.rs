//! Support for the end-to-end tests: each test starts the real `warmpool` binary on its own
//! port and host id against the real Docker engine, and talks to it over HTTP.
//!
//! Nothing is skipped: without a reachable engine every test fails, saying so. Nothing is left
//! behind: a [`Daemon`] kills its process and removes every container labelled with its host id
//! when dropped, which also runs when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

mod daemon;
mod delay_proxy;
mod engines;
mod events;
mod load;
mod plugins;
mod proxy;

pub use daemon::{Daemon, Setup};
pub use delay_proxy::DelayProxy;
pub use engines::{ExtraEngine, ExtraEngines, engines_of, exec_status};
pub use events::collect_events;
pub use load::CpuBurners;
pub use plugins::{Guest, plugin_check, plugin_yaml, replace_by_rename};
pub use proxy::EngineProxy;

pub const IMAGE: &str = "warmpool-test/busybox:latest";

/// The checkout's root (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Fail loudly unless the engine answers, then build the test image once per run.
pub fn engine_and_image() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let ok = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match ok {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "the Docker engine is not reachable; these end-to-end tests need it.\n{}\n\
                 Start it with: nohup dockerd >/var/log/dockerd.log 2>&1 &",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "the docker CLI is missing ({e}); these end-to-end tests need a Docker engine"
            ),
        }
        let script = repo_root().join("tests/images/build-busybox.sh");
        let st = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run build-busybox.sh");
        assert!(
            st.success(),
            "building the test image failed: {}",
            script.display()
        );
    });
}

/// The `warmpool` binary, built once per run (or `WARMPOOL_BIN`).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("WARMPOOL_BIN") {
            return PathBuf::from(p);
        }
        cargo_build("warmpool", "warmpool")
    })
    .clone()
}

/// The `warmpool-lab` binary (the policy lab's `trace`, `simulate` and `replay`):
/// `WARMPOOL_LAB_BIN`; else the one beside `WARMPOOL_BIN`, which the same build made (host/lab
/// has integration tests, so `cargo test --workspace --no-run` links its binary); else built
/// once per run.
pub fn lab_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("WARMPOOL_LAB_BIN") {
            return PathBuf::from(p);
        }
        if let Ok(p) = std::env::var("WARMPOOL_BIN") {
            let beside = Path::new(&p).with_file_name("warmpool-lab");
            assert!(
                beside.is_file(),
                "no warmpool-lab beside WARMPOOL_BIN ({}): build it (cargo build -p warmpool-lab) or set WARMPOOL_LAB_BIN",
                beside.display()
            );
            return beside;
        }
        cargo_build("warmpool-lab", "warmpool-lab")
    })
    .clone()
}

/// Build `bin` of `package` (debug) and give its path.
fn cargo_build(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(repo_root())
        .status()
        .expect("run cargo build");
    assert!(st.success(), "cargo build -p {package} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    target.join("debug").join(bin)
}

/// Containers (all states) carrying this host id's label.
pub fn containers_of(host_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=warmpool.host={host_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn remove_containers_of(host_id: &str) {
    let ids = containers_of(host_id);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `docker` CLI, for the few things a test does to the engine behind the daemon's back.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A pool definition for [`Daemon::start`], as YAML under `pools.<name>`.
pub fn pool_yaml(name: &str, body: &str) -> String {
    let mut s = format!("  {name}:\n    image: {IMAGE}\n");
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line.trim_start());
        s.push('\n');
    }
    s
}

/// Poll `check` every 100 ms until it yields a value, or fail after `within` saying `what`.
/// Each end-to-end test that waits for the daemon to get somewhere uses this one loop.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The peak resident memory of a process, in bytes (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
