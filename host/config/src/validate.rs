//! Layer two: raw structs to domain types, collecting every problem with its YAML path.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use warmpool_core::{BreakerConfig, ManagerConfig};

use crate::raw::*;
use crate::{Config, DockerConfig, PoolPlan, Problem, ServerConfig};

const TOP_KEYS: [&str; 5] = ["server", "docker", "limits", "pools", "plugins"];

/// Collects problems as validation walks the tree.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(Problem::new(path, msg));
    }

    /// Deserialise `v` as `T`, reporting a failure at `base` + the path inside `v`.
    fn section<T: DeserializeOwned + Default>(
        &mut self,
        base: &str,
        v: Option<&Value>,
    ) -> Option<T> {
        match v {
            None | Some(Value::Null) => Some(T::default()),
            Some(v) => self.de(base, v),
        }
    }

    /// Deserialise `v` as `T`. serde stops at the first error; so that one stray key does not
    /// hide every other problem, each unknown key is reported, dropped from a copy of the tree,
    /// and the rest deserialised again.
    fn de<T: DeserializeOwned>(&mut self, base: &str, v: &Value) -> Option<T> {
        let mut v = v.clone();
        let mut unknown = 0;
        loop {
            match serde_path_to_error::deserialize::<_, T>(v.clone()) {
                Ok(t) => return Some(t),
                Err(e) => {
                    let segments: Vec<String> = e
                        .path()
                        .iter()
                        .filter_map(|s| match s {
                            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                            _ => None,
                        })
                        .collect();
                    let inner = e.path().to_string();
                    let path = if inner == "." {
                        base.to_string()
                    } else {
                        format!("{base}.{inner}")
                    };
                    let message = e.into_inner().to_string();
                    let is_unknown = message.starts_with("unknown field");
                    self.push(path, message);
                    if !is_unknown || unknown >= 32 || !remove_key(&mut v, &segments) {
                        return None;
                    }
                    unknown += 1;
                }
            }
        }
    }

    pub(crate) fn duration(
        &mut self,
        path: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) => d,
                Err(e) => {
                    self.push(
                        path,
                        format!("invalid duration {s:?}: {e} (write e.g. \"30s\", \"10m\")"),
                    );
                    default
                }
            },
        }
    }

    pub(crate) fn size(&mut self, path: &str, v: &Option<Size>) -> Option<u64> {
        match v.as_ref()? {
            Size::Bytes(n) => Some(*n),
            Size::Text(s) => match parse_size(s) {
                Some(n) => Some(n),
                None => {
                    self.push(
                        path,
                        format!("invalid size {s:?} (write e.g. 512m, 2g, 1048576)"),
                    );
                    None
                }
            },
        }
    }
}

/// Remove the key at `path` (mapping keys from the root); false if it is not there.
fn remove_key(v: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = v;
    for k in parents {
        match node.get_mut(k.as_str()) {
            Some(n) => node = n,
            None => return false,
        }
    }
    node.as_mapping_mut()
        .and_then(|m| m.remove(last.as_str()))
        .is_some()
}

/// `512m`, `2g`, `64KiB`, `1048576`: binary units, as Docker reads them.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    (num >= 0.0).then(|| (num * mult as f64) as u64)
}

pub fn validate(
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(Value::Null) => Value::Mapping(Default::default()),
        Ok(v) => v,
        Err(e) => return Err(vec![Problem::new("(yaml)", e.to_string())]),
    };
    if !root.is_mapping() {
        return Err(vec![Problem::new(
            "(root)",
            "must be a mapping with server, docker, limits and pools",
        )]);
    }
    p.0.extend(crate::env::apply(&mut root, vars));
    let map = root.as_mapping().expect("checked above");
    for k in map.keys() {
        match k.as_str() {
            Some(s) if TOP_KEYS.contains(&s) => {}
            _ => p.push(
                key_name(k),
                format!("unknown key, expected one of {}", TOP_KEYS.join(", ")),
            ),
        }
    }

    let raw_server: RawServer = p.section("server", map.get("server")).unwrap_or_default();
    let exec_output_limit = p
        .size("server.exec_output_bytes", &raw_server.exec_output_bytes)
        .unwrap_or(1 << 20);
    let server = validate_server(&mut p, raw_server);
    let commit_interval = server.as_ref().map(|s| s.commit_interval);
    let keep_on_shutdown = server.as_ref().is_some_and(|s| s.keep_on_shutdown);
    let docker: RawDocker = p.section("docker", map.get("docker")).unwrap_or_default();
    let limits: RawLimits = p.section("limits", map.get("limits")).unwrap_or_default();
    let raw_plugins: RawPluginSettings =
        p.section("plugins", map.get("plugins")).unwrap_or_default();

    let mut pools = Vec::new();
    match map.get("pools") {
        None | Some(Value::Null) => p.push("pools", "at least one pool is required"),
        Some(Value::Mapping(m)) if m.is_empty() => p.push("pools", "at least one pool is required"),
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let name = key_name(k);
                let path = format!("pools.{name}");
                if !valid_pool_name(&name) {
                    p.push(
                        &path,
                        "pool names use a-z, 0-9, '-' and '_', up to 40 characters",
                    );
                }
                if let Some(raw) = p.de::<RawPool>(&path, v) {
                    pools.push(crate::pool::validate_pool(&mut p, &path, name, raw));
                }
            }
        }
        Some(_) => p.push("pools", "must be a mapping from pool name to pool settings"),
    }

    let mut manager = validate_limits(&mut p, &limits, &pools);
    manager.exec_output_limit = exec_output_limit as usize;
    if let Some(ci) = commit_interval {
        manager.commit_interval = ci;
    }
    manager.keep_on_shutdown = keep_on_shutdown;
    if let Some(ep) = &docker.endpoint {
        if !["unix://", "tcp://", "http://", "https://"]
            .iter()
            .any(|s| ep.starts_with(s))
        {
            p.push(
                "docker.endpoint",
                format!("{ep:?} must start with unix://, tcp://, http:// or https://"),
            );
        }
    }
    let plugins = crate::pool::validate_plugin_settings(
        &mut p,
        &raw_plugins,
        server.as_ref().map_or("default", |s| s.host_id.as_str()),
    );
    match (p.0.is_empty(), server) {
        (true, Some(server)) => Ok(Config {
            server,
            docker: DockerConfig {
                endpoint: docker.endpoint,
            },
            manager,
            pools,
            plugins,
        }),
        _ => Err(p.0),
    }
}

pub(crate) fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn valid_pool_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 40
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn validate_server(p: &mut Problems, raw: RawServer) -> Option<ServerConfig> {
    let listen_s = raw.listen.unwrap_or_else(|| "127.0.0.1:7070".into());
    let listen = match listen_s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(e) => {
            p.push(
                "server.listen",
                format!("{listen_s:?} is not an address:port ({e})"),
            );
            None
        }
    };
    let host_id = raw
        .host_id
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    if host_id.is_empty() || host_id.len() > 128 || host_id.contains(char::is_whitespace) {
        p.push("server.host_id", "must be 1-128 characters without spaces");
    }
    if let Some(var) = &raw.auth_token_env {
        if var.is_empty() {
            p.push("server.auth_token_env", "must name an environment variable");
        }
    }
    let max_request_bytes = p
        .size("server.max_request_bytes", &raw.max_request_bytes)
        .unwrap_or(1 << 20);
    let max_upload_bytes = p
        .size("server.max_upload_bytes", &raw.max_upload_bytes)
        .unwrap_or(64 << 20);
    let shutdown_grace = p.duration(
        "server.shutdown_grace",
        &raw.shutdown_grace,
        Duration::from_secs(20),
    );
    let commit_interval = p.duration(
        "server.commit_interval",
        &raw.commit_interval,
        Duration::from_millis(20),
    );
    if commit_interval < Duration::from_millis(1) || commit_interval > Duration::from_secs(1) {
        p.push(
            "server.commit_interval",
            "must be between 1ms and 1s: it bounds how much a crash can lose",
        );
    }
    if raw.state_dir.as_deref() == Some("") {
        p.push("server.state_dir", "must be a directory path");
    }
    let keep_on_shutdown = raw.keep_on_shutdown.unwrap_or(false);
    if keep_on_shutdown && raw.state_dir.as_deref().is_none_or(str::is_empty) {
        p.push(
            "server.keep_on_shutdown",
            "needs server.state_dir: without persisted leases the next start cannot take the containers back",
        );
    }
    Some(ServerConfig {
        listen: listen?,
        state_dir: raw
            .state_dir
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from),
        commit_interval,
        keep_on_shutdown,
        auth_token_env: raw.auth_token_env,
        host_id,
        max_request_bytes: max_request_bytes as usize,
        max_upload_bytes: max_upload_bytes as usize,
        shutdown_grace,
        audit_log: raw.audit_log.as_ref().map(std::path::PathBuf::from),
    })
}

fn validate_limits(p: &mut Problems, raw: &RawLimits, pools: &[PoolPlan]) -> ManagerConfig {
    let d = ManagerConfig::default();
    let max_containers = raw.max_containers.unwrap_or(d.max_containers);
    let min_sum: u32 = pools.iter().map(|pl| pl.pool.min_ready).sum();
    if min_sum > max_containers {
        p.push(
            "limits.max_containers",
            format!("must be ≥ the sum of the pools' min_ready ({min_sum} > {max_containers})"),
        );
    }
    let creates = raw
        .max_concurrent_creates
        .unwrap_or(d.max_concurrent_creates as u32);
    if creates == 0 {
        p.push("limits.max_concurrent_creates", "must be ≥ 1");
    }
    let removes = raw
        .max_concurrent_removes
        .unwrap_or(d.max_concurrent_removes as u32);
    if removes == 0 {
        p.push("limits.max_concurrent_removes", "must be ≥ 1");
    }
    ManagerConfig {
        max_containers,
        max_concurrent_creates: creates as usize,
        max_concurrent_removes: removes as usize,
        breaker: BreakerConfig::default(),
        ..d
    }
}
