//! Plugins in end-to-end tests: guests built in this run (Rust with cargo, Python with
//! componentize-py), copied where a daemon's config points, their status over the API, and
//! what a daemon process reads and burns while it should be idle.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use warmpool_test_components::{component, python_component};

use crate::Daemon;

/// A guest to copy into a test's plugin directory.
#[derive(Debug, Clone, Copy)]
pub enum Guest {
    /// A Rust component of the `plugins/` workspace, by file stem (`sizing_fixed`).
    Rust(&'static str),
    /// A Python guest of `plugins/test-guests/python`, by module, built for a world.
    Python(&'static str, &'static str),
}

impl Guest {
    /// The built component (built once per test process).
    pub fn built(self) -> PathBuf {
        match self {
            Guest::Rust(name) => component(name),
            Guest::Python(module, world) => python_component(module, world),
        }
    }

    /// Copy the built component to `dir/file` and return that path.
    pub fn copy_to(self, dir: &Path, file: &str) -> PathBuf {
        let to = dir.join(file);
        std::fs::copy(self.built(), &to).unwrap();
        to
    }
}

/// Run `warmpool plugin check --world <world> [--config k=v]… <wasm>` and return its output.
pub fn plugin_check(world: &str, config: &[&str], wasm: &Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::binary());
    cmd.args(["plugin", "check", "--world", world]);
    for kv in config {
        cmd.args(["--config", kv]);
    }
    cmd.arg(wasm).output().expect("run warmpool plugin check")
}

/// Replace `to` the way editors and deploy tools do: write a temp file, rename it over.
pub fn replace_by_rename(from: &Path, to: &Path) {
    let tmp = to.with_extension("wasm.tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The `plugins:` line of a pool: `kind` served by the file at `path` with these settings.
pub fn plugin_yaml(kind: &str, path: &Path, config: &[(&str, &str)]) -> String {
    let cfg: Vec<String> = config
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect();
    format!(
        "plugins: {{ {kind}: {{ path: \"{}\", config: {{ {} }} }} }}",
        path.display(),
        cfg.join(", ")
    )
}

impl Daemon {
    /// The `/v1/plugins` entry of this pool and kind (`Null` when there is none).
    pub async fn plugin(&self, pool: &str, kind: &str) -> Value {
        let (st, _, v) = self.call(Method::GET, "/v1/plugins", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"] == pool && p["kind"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The `/v1/plugins` entry once its slot has settled: the first version loads in the
    /// background after the daemon answers (the built-in serves meanwhile), so a test that
    /// reads a state it did not wait for races the compile. Fails after `within`.
    pub async fn plugin_settled(
        &self,
        pool: &str,
        kind: &str,
        within: std::time::Duration,
    ) -> Value {
        crate::eventually(
            within,
            &format!("{pool}/{kind} finishes loading"),
            || async {
                let p = self.plugin(pool, kind).await;
                (p["state"] != "compiling").then_some(p)
            },
        )
        .await
    }

    /// Bytes the process has read through system calls so far (`rchar`: page-cache hits
    /// included, which is what re-reading one plugin file over and over costs).
    pub fn read_chars(&self) -> u64 {
        proc_field(&format!("/proc/{}/io", self.pid()), "rchar:")
    }

    /// CPU time the process has used so far, in clock ticks (user + system).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `)`.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

fn proc_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
