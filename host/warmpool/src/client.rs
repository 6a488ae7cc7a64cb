//! Client commands against a running daemon, over its HTTP API.

use std::process::ExitCode;

use clap::Args;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// Where the client commands find the daemon, and the token they send.
#[derive(Args, Clone)]
pub struct Conn {
    /// Base URL of the daemon.
    #[arg(long, env = "WARMPOOL_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Bearer token, when the daemon requires one.
    #[arg(long, env = "WARMPOOL_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Conn {
    /// The connection and lease ID for a `LEASE` argument: a lease ID; a lease token
    /// (`wpl.<id>.<mac>`, from an acquire's answer), which opens that lease alone and is then
    /// sent as the bearer token in place of any other; or `wpl.<id>`, the token without its
    /// MAC, which names the lease while the token itself comes from `WARMPOOL_TOKEN` (and stays
    /// off the command line, where other users of the machine could read it).
    pub fn for_lease(&self, lease: &str) -> (Conn, String) {
        let Some(rest) = lease.strip_prefix("wpl.") else {
            return (self.clone(), lease.to_string());
        };
        match rest.rsplit_once('.') {
            Some((id, _)) => (
                Conn {
                    url: self.url.clone(),
                    token: Some(lease.to_string()),
                },
                id.to_string(),
            ),
            None => (self.clone(), rest.to_string()),
        }
    }

    /// The bearer token, when one is set.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The daemon's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let r = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send, and turn any failure into a one-line message.
    pub(crate) async fn send(&self, r: RequestBuilder) -> Result<(StatusCode, Value), String> {
        let resp = r
            .send()
            .await
            .map_err(|e| format!("cannot reach the daemon at {}: {e}", self.url))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok((status, v))
        } else {
            let code = v["error"]["code"].as_str().unwrap_or("error");
            let msg = v["error"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_string);
            Err(format!("{status}: {code}: {msg}"))
        }
    }
}

fn fail(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// `warmpool status`: every pool's counts, target and policies.
pub async fn status(c: &Conn) -> ExitCode {
    let (_, v) = match c.send(c.req(Method::GET, "/v1/pools")).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    println!(
        "{:<16} {:<11} {:>6} {:>6} {:>8} {:>6} {:>8} {:>7} {:>9} {:>9}",
        "POOL",
        "STATUS",
        "READY",
        "LEASED",
        "CREATING",
        "TARGET",
        "ACQUIRES",
        "HIT%",
        "P50 ms",
        "P99 ms"
    );
    for p in v["pools"].as_array().into_iter().flatten() {
        let f = |x: &Value| x.as_f64().map_or("-".to_string(), |n| format!("{n:.3}"));
        let hit = p["acquires"]["hit_rate"]
            .as_f64()
            .map_or("-".to_string(), |h| format!("{:.1}", h * 100.0));
        println!(
            "{:<16} {:<11} {:>6} {:>6} {:>8} {:>6} {:>8} {:>7} {:>9} {:>9}",
            p["name"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            // JSON numbers ignore width flags; format them as text first.
            p["counts"]["ready"].to_string(),
            p["counts"]["leased"].to_string(),
            p["counts"]["creating"].to_string(),
            p["target"].to_string(),
            p["acquires"]["total"].to_string(),
            hit,
            f(&p["acquires"]["latency_ms_p50"]),
            f(&p["acquires"]["latency_ms_p99"]),
        );
        if let Some(err) = p["creates"]["last_error"].as_str() {
            println!("{:<16} last create error: {err}", "");
        }
    }
    ExitCode::SUCCESS
}

/// `warmpool engines`: each engine's state, containers, create p50 and version.
pub async fn engines(c: &Conn) -> ExitCode {
    let (_, v) = match c.send(c.req(Method::GET, "/v1/engines")).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    println!(
        "{:<16} {:<5} {:>6} {:>6} {:>8} {:>7} {:>8} {:>9} {:<10} ENDPOINT",
        "ENGINE", "STATE", "READY", "LEASED", "CREATING", "COUNTED", "MAX", "P50 ms", "VERSION"
    );
    for e in v["engines"].as_array().into_iter().flatten() {
        let t = |x: &Value| x.as_str().map_or("-".to_string(), str::to_string);
        let n = |x: &Value| {
            if x.is_null() {
                "-".to_string()
            } else {
                x.to_string()
            }
        };
        println!(
            "{:<16} {:<5} {:>6} {:>6} {:>8} {:>7} {:>8} {:>9} {:<10} {}",
            t(&e["name"]),
            t(&e["state"]),
            n(&e["containers"]["ready"]),
            n(&e["containers"]["leased"]),
            n(&e["containers"]["creating"]),
            n(&e["counted"]),
            n(&e["max_containers"]),
            n(&e["create_p50_ms"]),
            t(&e["version"]),
            t(&e["endpoint"]),
        );
        if let Some(err) = e["last_error"].as_str()
            && e["state"] == "down"
        {
            println!("{:<16} last error: {err}", "");
        }
    }
    ExitCode::SUCCESS
}

/// What `warmpool acquire` asks the lease to be set up with.
#[derive(Args, Clone, Debug, Default)]
pub struct LeaseSetup {
    /// An environment variable of every command in the lease, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// A secret variable (never in the lease's answers or logs): KEY=VALUE, KEY=@FILE (the
    /// file's content) or KEY alone (the value of the local environment variable KEY, which
    /// keeps it off the command line). Repeatable.
    #[arg(long = "secret", value_name = "KEY[=VALUE|=@FILE]")]
    pub secrets: Vec<String>,
    /// A file written in the container before the lease is handed over: PATH=@LOCAL (a local
    /// file's bytes and permission bits) or PATH=TEXT. Repeatable.
    #[arg(long = "file", value_name = "PATH=@LOCAL|PATH=TEXT", value_parser = key_value)]
    pub files: Vec<(String, String)>,
    /// The working directory of the lease's commands (it must exist, or be the parent of a
    /// `--file`).
    #[arg(long)]
    pub workdir: Option<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl LeaseSetup {
    /// The acquire body's `env`, `secrets`, `files` and `workdir`, local files and variables
    /// read.
    fn body(&self, body: &mut Value) -> Result<(), String> {
        use base64::Engine as _;
        if !self.env.is_empty() {
            body["env"] = json!(
                self.env
                    .iter()
                    .cloned()
                    .collect::<std::collections::BTreeMap<_, _>>()
            );
        }
        let mut secrets = serde_json::Map::new();
        for s in &self.secrets {
            let (k, v) = match s.split_once('=') {
                Some((k, f)) if f.starts_with('@') => {
                    let v = std::fs::read_to_string(&f[1..])
                        .map_err(|e| format!("--secret {k}: cannot read {}: {e}", &f[1..]))?;
                    (k, v)
                }
                Some((k, v)) => (k, v.to_string()),
                None => (
                    s.as_str(),
                    std::env::var(s)
                        .map_err(|_| format!("--secret {s}: no environment variable {s} here"))?,
                ),
            };
            if k.is_empty() {
                return Err(format!("--secret {s:?}: no name"));
            }
            secrets.insert(k.to_string(), Value::String(v));
        }
        if !secrets.is_empty() {
            body["secrets"] = Value::Object(secrets);
        }
        let mut files = serde_json::Map::new();
        for (path, v) in &self.files {
            let f = match v.strip_prefix('@') {
                Some(local) => {
                    let bytes = std::fs::read(local)
                        .map_err(|e| format!("--file {path}: cannot read {local}: {e}"))?;
                    let mode = std::fs::metadata(local)
                        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                        .map_err(|e| format!("--file {path}: {local}: {e}"))?;
                    json!({
                        "content_b64": base64::engine::general_purpose::STANDARD.encode(bytes),
                        "mode": mode,
                    })
                }
                None => Value::String(v.clone()),
            };
            files.insert(path.clone(), f);
        }
        if !files.is_empty() {
            body["files"] = Value::Object(files);
        }
        if let Some(w) = &self.workdir {
            body["workdir"] = json!(w);
        }
        Ok(())
    }
}

/// `warmpool acquire`: take a lease and print it as JSON.
pub async fn acquire(
    c: &Conn,
    pool: &str,
    ttl: Option<u64>,
    wait_ms: Option<u64>,
    setup: &LeaseSetup,
) -> ExitCode {
    let mut body = json!({ "pool": pool, "ttl_s": ttl, "wait_ms": wait_ms });
    if let Err(e) = setup.body(&mut body) {
        return fail(e);
    }
    match c.send(c.req(Method::POST, "/v1/leases").json(&body)).await {
        Ok((_, v)) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `warmpool exec`: run a command in a leased container; exits with its exit code.
pub async fn exec(c: &Conn, lease: &str, cmd: Vec<String>, timeout_ms: Option<u64>) -> ExitCode {
    let body = json!({ "cmd": cmd, "timeout_ms": timeout_ms });
    match c
        .send(
            c.req(Method::POST, &format!("/v1/leases/{lease}/exec"))
                .json(&body),
        )
        .await
    {
        Ok((_, v)) => {
            print!("{}", v["stdout"].as_str().unwrap_or(""));
            eprint!("{}", v["stderr"].as_str().unwrap_or(""));
            if v["timed_out"].as_bool() == Some(true) {
                eprintln!("error: command timed out");
                return ExitCode::from(124);
            }
            ExitCode::from(v["exit_code"].as_i64().map_or(1, |c| c.clamp(0, 255) as u8))
        }
        Err(e) => fail(e),
    }
}

/// `warmpool release`: end a lease (its container is removed).
pub async fn release(c: &Conn, lease: &str) -> ExitCode {
    match c
        .send(c.req(Method::DELETE, &format!("/v1/leases/{lease}")))
        .await
    {
        Ok(_) => {
            println!("released {lease}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `warmpool plugin list`: each pool's policies, the wasm plugins with their state and
/// counters, and the built-ins (state `builtin`) where a pool runs no plugin.
pub async fn plugins(c: &Conn) -> ExitCode {
    let (_, v) = match c.send(c.req(Method::GET, "/v1/plugins")).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (_, pools) = match c.send(c.req(Method::GET, "/v1/pools")).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut rows: Vec<Value> = v["plugins"].as_array().cloned().unwrap_or_default();
    rows.extend(builtins(&pools, &rows));
    rows.sort_by(|a, b| {
        (a["pool"].as_str(), a["kind"].as_str()).cmp(&(b["pool"].as_str(), b["kind"].as_str()))
    });
    println!(
        "{:<16} {:<11} {:<9} {:>7} {:>8} {:>8} {:>9}  {:<14} PATH",
        "POOL", "KIND", "STATE", "RELOADS", "CALLS", "FAILURES", "FALLBACKS", "SHA256"
    );
    for p in &rows {
        let t = |k: &str| p[k].as_str().unwrap_or("-").to_string();
        let n = |k: &str| p[k].to_string();
        let sha = p["sha256"]
            .as_str()
            .map_or("-".to_string(), |s| s.chars().take(12).collect());
        println!(
            "{:<16} {:<11} {:<9} {:>7} {:>8} {:>8} {:>9}  {:<14} {}",
            t("pool"),
            t("kind"),
            t("state"),
            n("reloads"),
            n("calls"),
            n("failures"),
            n("fallbacks"),
            sha,
            t("path")
        );
        if let Some(e) = p["last_error"].as_str() {
            println!("{:<16} last error: {e}", "");
        }
    }
    ExitCode::SUCCESS
}

/// A row for each policy a pool runs built in: a kind with no plugin row, named by the pool's
/// `policies` (`builtin:adaptive`, `builtin:cold`, ...). Plugins fall back to these, so the
/// table shows what decides for every pool.
fn builtins(pools: &Value, plugins: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in pools["pools"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("?");
        for kind in ["sizing", "exhaustion", "health"] {
            let has_plugin = plugins
                .iter()
                .any(|r| r["pool"].as_str() == Some(name) && r["kind"].as_str() == Some(kind));
            match p["policies"][kind].as_str() {
                Some(policy) if !has_plugin => out.push(json!({
                    "pool": name,
                    "kind": kind,
                    "state": "builtin",
                    "path": policy,
                })),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Conn;

    fn conn(token: Option<&str>) -> Conn {
        Conn {
            url: "http://127.0.0.1:7070".into(),
            token: token.map(Into::into),
        }
    }

    #[test]
    fn a_lease_argument_is_an_id_a_lease_token_or_the_tokens_name() {
        let (c, id) = conn(Some("tenant")).for_lease("0b5e-id");
        assert_eq!((c.token(), id.as_str()), (Some("tenant"), "0b5e-id"));
        let (c, id) = conn(Some("tenant")).for_lease("wpl.0b5e-id.MAC");
        assert_eq!(
            (c.token(), id.as_str()),
            (Some("wpl.0b5e-id.MAC"), "0b5e-id")
        );
        let (c, id) = conn(Some("wpl.0b5e-id.MAC")).for_lease("wpl.0b5e-id");
        assert_eq!(
            (c.token(), id.as_str()),
            (Some("wpl.0b5e-id.MAC"), "0b5e-id")
        );
    }
}
