//! [`Daemon`]: the real binary under test, on its own port, host id and temporary directory;
//! started, called over HTTP, killed or restarted, and always cleaned up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{binary, engine_and_image, remove_containers_of};

/// What a test may add to a daemon's config. `server` lines go under `server:` (indented) and
/// may end with top-level sections (`docker:` …); `{STATE_DIR}` becomes a directory inside the
/// daemon's temporary directory. `limits` replaces the default `limits:` lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Setup<'a> {
    pub server: &'a str,
    pub limits: &'a str,
    pub env: &'a [(&'a str, &'a str)],
}

/// A running daemon under test.
pub struct Daemon {
    pub host_id: String,
    pub url: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
    env: Vec<(String, String)>,
    /// The config up to `pools:`, for [`Daemon::write_pools`].
    head: String,
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    /// Start a daemon with these pools (YAML from [`pool_yaml`]) and wait until it is ready.
    pub async fn start(pools: &[String]) -> Daemon {
        Self::start_with(pools, "", &[]).await
    }

    /// As [`start`](Self::start), with extra `server:` lines and environment. `{STATE_DIR}` in
    /// `server_extra` becomes a directory inside the daemon's temporary directory.
    pub async fn start_with(pools: &[String], server_extra: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_setup(
            pools,
            Setup {
                server: server_extra,
                env,
                ..Setup::default()
            },
        )
        .await
    }

    /// Start with everything a test may set: see [`Setup`].
    pub async fn start_setup(pools: &[String], setup: Setup<'_>) -> Daemon {
        let Setup {
            server: server_extra,
            limits,
            env,
        } = setup;
        let limits = if limits.is_empty() {
            "  max_containers: 20\n  max_concurrent_creates: 4\n"
        } else {
            limits
        };
        engine_and_image();
        let host_id = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let server_extra = server_extra.replace(
            "{STATE_DIR}",
            &dir.path().join("state").display().to_string(),
        );
        let mut yaml = format!(
            "server:\n  listen: 127.0.0.1:{port}\n  host_id: {host_id}\n  shutdown_grace: 15s\n{server_extra}\
             limits:\n{limits}pools:\n"
        );
        let head = yaml.clone();
        for p in pools {
            yaml.push_str(p);
        }
        let cfg = dir.path().join("warmpool.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut d = Daemon {
            host_id,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child: None,
            http: reqwest::Client::new(),
            env,
            head,
        };
        d.spawn();
        // Another test may bind the free port before this daemon does: then another port, a
        // few times, rather than a failure that has nothing to do with the test.
        for _ in 0..3 {
            if !d.lost_its_port().await {
                break;
            }
            let (old, new) = (port_of(&d.url), free_port());
            let cfg = std::fs::read_to_string(d.config_path()).unwrap().replace(
                &format!("listen: 127.0.0.1:{old}\n"),
                &format!("listen: 127.0.0.1:{new}\n"),
            );
            std::fs::write(d.config_path(), cfg).unwrap();
            d.head = d.head.replace(
                &format!("listen: 127.0.0.1:{old}\n"),
                &format!("listen: 127.0.0.1:{new}\n"),
            );
            d.url = format!("http://127.0.0.1:{new}");
            d.spawn();
        }
        d.wait_ready(Duration::from_secs(60)).await;
        d
    }

    /// Whether the daemon just started exited because its port was taken. Read from its own
    /// log (a port answering could be another test's daemon): `warmpool serving` comes once it
    /// holds its port, `cannot bind` when another has it.
    async fn lost_its_port(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains("cannot bind") {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                // The next start appends to the same log: keep this attempt's out of it.
                let _ = std::fs::write(self.dir.path().join("daemon.log"), "");
                return true;
            }
            if log.contains("warmpool serving") {
                return false;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                // Exited for another reason: `wait_ready` says which.
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Start the binary on this daemon's config, appending to its log.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(binary())
            .args(["serve", "-c"])
            .arg(self.config_path())
            .env("RUST_LOG", "info,warmpool=debug")
            // Whatever the daemon keeps in the temporary directory (the plugin compile cache by
            // default) goes in this test's directory, removed with it.
            .env("TMPDIR", self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn warmpool");
        self.child = Some(child);
    }

    /// Replace the config file's pools (the server part stays), as an editor would: write a
    /// temporary file, then rename it over the config.
    pub fn write_pools(&self, pools: &[String]) {
        let mut yaml = self.head.clone();
        for p in pools {
            yaml.push_str(p);
        }
        self.write_config(&yaml);
    }

    /// Replace the whole config file (write to a temporary file, then rename).
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.dir.path().join(".warmpool.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Send a signal (`HUP`, `TERM`, …) to the daemon.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("warmpool.yaml")
    }

    /// `kill -9`: the daemon gets no chance to clean up.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Start the daemon again on the same config, host id and state, and wait until ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon first");
        self.spawn();
        self.wait_ready(Duration::from_secs(60)).await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            // A daemon that exited (bad config, port taken) will never be ready: say so now.
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "daemon exited with {status} before it was ready; log:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not ready in {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One request; the body is JSON when given. Returns status, headers and the JSON answer.
    /// A POST always says it is JSON, with an empty body when none is given: the daemon
    /// refuses any other (a web page could send it cross-site).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_with(None, method, path, body).await
    }

    /// `GET /metrics` as text, with `Authorization: Bearer <token>` when given (the tenants'
    /// families need an admin's) and `Accept: <accept>` when given (OpenMetrics).
    pub async fn metrics_as(&self, token: Option<&str>, accept: Option<&str>) -> String {
        let mut r = self.http.get(format!("{}/metrics", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(a) = accept {
            r = r.header(reqwest::header::ACCEPT, a);
        }
        r.send().await.unwrap().text().await.unwrap()
    }

    /// As [`call`](Self::call), with `Authorization: Bearer <token>`.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_with(Some(token), method, path, body).await
    }

    async fn call_with(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let post = method == Method::POST;
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        } else if post {
            r = r.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}; log:\n{}", self.log()));
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, v)
    }

    pub async fn raw(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    /// Send `GET path` over a plain socket, byte for byte: HTTP clients normalise `..` away,
    /// and a hostile client would not. Returns the status code.
    pub async fn get_path_as_is(&self, path: &str) -> u16 {
        self.request_as_is("GET", path.as_bytes(), &[], b"").await.0
    }

    /// Send a request over a plain socket exactly as given (the path may hold any bytes).
    /// `Host` is the daemon's address unless `headers` give one (a page's rebound name).
    /// Returns the status code and the body.
    pub async fn request_as_is(
        &self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = Vec::new();
        req.extend_from_slice(method.as_bytes());
        req.push(b' ');
        req.extend_from_slice(path);
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or(addr, |(_, v)| *v);
        req.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let headers = headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"));
        for (k, v) in headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        s.write_all(&req).await.unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        (status, body)
    }

    /// Acquire from `pool`, asserting success.
    pub async fn acquire(&self, body: Value) -> Value {
        let (st, _, v) = self.call(Method::POST, "/v1/leases", Some(body)).await;
        assert_eq!(
            st,
            StatusCode::CREATED,
            "acquire failed: {v}\nlog:\n{}",
            self.log()
        );
        v
    }

    pub async fn exec(&self, lease: &str, body: Value) -> Value {
        let (st, _, v) = self
            .call(
                Method::POST,
                &format!("/v1/leases/{lease}/exec"),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "exec failed: {v}");
        v
    }

    pub async fn pool(&self, name: &str) -> Value {
        let (st, _, v) = self
            .call(Method::GET, &format!("/v1/pools/{name}"), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Poll `cond` on the pool's stats until it holds, or fail with the last stats.
    pub async fn wait_pool(
        &self,
        name: &str,
        within: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let p = self.pool(name).await;
            if cond(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pool {name} never met the condition in {within:?}: {p:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn warm_up(&self, name: &str) -> Value {
        let (st, _, v) = self
            .call(
                Method::POST,
                &format!("/v1/pools/{name}/warm-up"),
                Some(serde_json::json!({"timeout_ms": 60_000})),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::OK,
            "warm-up failed: {v}\nlog:\n{}",
            self.log()
        );
        v
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send SIGTERM and wait for the process to exit; returns its exit status and how long.
    pub fn terminate(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let t0 = Instant::now();
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            if t0.elapsed() > within {
                let _ = child.kill();
                panic!(
                    "daemon did not exit within {within:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first: the daemon's own shutdown waits for creates in flight, which a
            // SIGKILL would leave to finish at the engine after our sweep below.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Even when the test failed: nothing of this daemon stays on the engine. The second
        // sweep catches a create the engine completed after the first.
        remove_containers_of(&self.host_id);
        std::thread::sleep(Duration::from_millis(300));
        remove_containers_of(&self.host_id);
        if std::thread::panicking() {
            eprintln!("--- daemon log ({}) ---\n{}", self.host_id, self.log());
        }
    }
}
