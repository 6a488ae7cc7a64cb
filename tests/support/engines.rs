//! [`ExtraEngines`]: Docker engines of the test's own, each a dockerd in a network namespace of
//! its own, reached over TCP (one or more over TLS), started by `tests/engines/engines.sh` and
//! torn down when dropped, even when the test panics. The host's engine is only read from (the
//! test image is saved from it into an engine by [`ExtraEngines::load`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Daemon, eventually, repo_root};

/// `GET /v1/engines`, by engine name.
pub async fn engines_of(d: &Daemon) -> BTreeMap<String, Value> {
    let (st, _, v) = d.call(Method::GET, "/v1/engines", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// Run `echo hi` in lease `lease`; the status and body, whatever they are.
pub async fn exec_status(d: &Daemon, lease: &str) -> (StatusCode, Value) {
    let (st, _, v) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{lease}/exec"),
            Some(json!({"cmd": ["echo", "hi"], "timeout_ms": 10_000})),
        )
        .await;
    (st, v)
}

/// One extra engine, as `engines.env` lists it.
#[derive(Debug, Clone)]
pub struct ExtraEngine {
    /// `e1`, `e2`, …
    pub name: String,
    /// `tcp://10.231.T.(10+i):2375`, or `:2376` with TLS.
    pub endpoint: String,
    /// Whether it requires the client certificate.
    pub tls: bool,
    /// Its unix socket, for the test's own `docker` calls (it works while the engine is cut).
    pub socket: PathBuf,
}

/// Extra engines for one test; `down` runs on drop.
pub struct ExtraEngines {
    dir: PathBuf,
    pub engines: Vec<ExtraEngine>,
    /// The client certificate files (`ca`, `cert`, `key`), when an engine uses TLS.
    pub tls: Option<[PathBuf; 3]>,
}

fn script() -> PathBuf {
    repo_root().join("tests/engines/engines.sh")
}

fn run(args: &[&str]) -> Output {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run tests/engines/engines.sh");
    assert!(
        out.status.success(),
        "engines.sh {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl ExtraEngines {
    /// Start `n` engines; engines whose 1-based index is in `tls` use TLS. Fails loudly (the
    /// engine tests never skip).
    pub fn up(n: usize, tls: &[usize], live_restore: bool) -> Self {
        Self::up_with(n, tls, live_restore, &[])
    }

    /// As [`up`](Self::up), with more `engines.sh up` options, e.g. `["--runsc", "all",
    /// "--experimental"]` for engines with gVisor registered and checkpoints on.
    pub fn up_with(n: usize, tls: &[usize], live_restore: bool, extra: &[&str]) -> Self {
        crate::engine_and_image();
        // Short: the engines' unix sockets live under it.
        let dir = PathBuf::from(format!(
            "/tmp/wpe-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ));
        let mut args: Vec<String> = vec!["up".into(), dir.display().to_string(), n.to_string()];
        for i in tls {
            args.push("--tls".into());
            args.push(i.to_string());
        }
        args.push("--owner".into());
        args.push(std::process::id().to_string());
        if live_restore {
            args.push("--live-restore".into());
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&argv);
        let mut me = ExtraEngines {
            dir,
            engines: Vec::new(),
            tls: None,
        };
        me.read_env();
        assert_eq!(me.engines.len(), n, "engines.env lists every engine");
        me
    }

    fn read_env(&mut self) {
        let text = std::fs::read_to_string(self.dir.join("engines.env")).expect("engines.env");
        let (mut ca, mut cert, mut key) = (None, None, None);
        self.engines.clear();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["engine", name, endpoint, mode, socket, ..] => self.engines.push(ExtraEngine {
                    name: name.to_string(),
                    endpoint: endpoint.to_string(),
                    tls: *mode == "tls",
                    socket: PathBuf::from(socket),
                }),
                ["tls_ca", p] => ca = Some(PathBuf::from(p)),
                ["tls_cert", p] => cert = Some(PathBuf::from(p)),
                ["tls_key", p] => key = Some(PathBuf::from(p)),
                _ => {}
            }
        }
        if let (Some(a), Some(b), Some(c)) = (ca, cert, key) {
            self.tls = Some([a, b, c]);
        }
    }

    /// Copy `image` from the host's engine into engine `name`.
    pub fn load(&self, name: &str, image: &str) {
        run(&["load", &self.dir_str(), name, image]);
    }

    /// Take engine `name`'s network away (connections to it hang), or give it back.
    pub fn cut(&self, name: &str) {
        run(&["cut", &self.dir_str(), name]);
    }

    pub fn restore(&self, name: &str) {
        run(&["restore", &self.dir_str(), name]);
    }

    /// `kill -9` engine `name`'s dockerd and containerd.
    pub fn kill(&self, name: &str) {
        run(&["kill", &self.dir_str(), name, "--containerd"]);
    }

    /// Start engine `name` again on the same data root.
    pub fn start(&mut self, name: &str) {
        run(&["start", &self.dir_str(), name]);
        self.read_env();
    }

    /// Run the docker CLI against engine `name` over its unix socket.
    pub fn docker(&self, name: &str, args: &[&str]) -> Output {
        let e = self.engine(name);
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", e.socket.display()))
            .args(args)
            .output()
            .expect("run docker")
    }

    /// IDs of the containers on engine `name` labelled with `host_id`.
    pub fn containers_of(&self, name: &str, host_id: &str) -> Vec<String> {
        let out = self.docker(
            name,
            &[
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=warmpool.host={host_id}"),
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn engine(&self, name: &str) -> &ExtraEngine {
        self.engines
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no engine {name}"))
    }

    /// The daemon's `docker:` section for these engines; `labels(name)` gives each engine's
    /// labels as flow YAML (`{zone: a}`), `max` each engine's cap.
    pub fn docker_yaml(&self, labels: impl Fn(&str) -> String, max: Option<u32>) -> String {
        let mut y = String::from("docker:\n  engines:\n");
        for e in &self.engines {
            y.push_str(&format!(
                "    - name: {}\n      endpoint: \"{}\"\n      labels: {}\n",
                e.name,
                e.endpoint,
                labels(&e.name)
            ));
            if let Some(m) = max {
                y.push_str(&format!("      max_containers: {m}\n"));
            }
            if e.tls {
                let [ca, cert, key] = self.tls.as_ref().expect("TLS files listed");
                y.push_str(&format!(
                    "      tls: {{ ca: \"{}\", cert: \"{}\", key: \"{}\" }}\n",
                    ca.display(),
                    cert.display(),
                    key.display()
                ));
            }
        }
        y
    }

    /// Wait until the daemon's count on each engine equals the containers the engine holds.
    pub async fn books_match(&self, d: &Daemon, what: &str) {
        eventually(Duration::from_secs(30), what, || async {
            let by = engines_of(d).await;
            let ok = self.engines.iter().all(|e| {
                by[&e.name]["counted"].as_u64().unwrap() as usize
                    == self.containers_of(&e.name, &d.host_id).len()
            });
            ok.then_some(())
        })
        .await;
    }

    fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ExtraEngines {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(script())
            .args(["down", &self.dir_str()])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "engines.sh down {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("engines.sh down: {e}"),
        }
    }
}
