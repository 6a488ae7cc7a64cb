//! Layer two: raw structs to domain types, collecting every problem with its YAML path.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use warmpool_core::policy_logic::health::{ExecProbe, HttpProbe};
use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{
    BreakerConfig, BuiltinExhaustion, BuiltinSizing, ContainerSpec, ManagerConfig, PoolConfig,
};

use crate::raw::*;
use crate::{Config, DockerConfig, HealthPlan, PoolPlan, Problem, ServerConfig};

const TOP_KEYS: [&str; 5] = ["server", "docker", "limits", "pools", "plugins"];

/// Collects problems as validation walks the tree.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
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

    fn duration(&mut self, path: &str, v: &Option<String>, default: Duration) -> Duration {
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

    fn size(&mut self, path: &str, v: &Option<Size>) -> Option<u64> {
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
                    pools.push(validate_pool(&mut p, &path, name, raw));
                }
            }
        }
        Some(_) => p.push("pools", "must be a mapping from pool name to pool settings"),
    }

    let mut manager = validate_limits(&mut p, &limits, &pools);
    manager.exec_output_limit = exec_output_limit as usize;
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
    let plugins = validate_plugin_settings(
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

fn key_name(k: &Value) -> String {
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
    Some(ServerConfig {
        listen: listen?,
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

fn validate_plugin_settings(
    p: &mut Problems,
    raw: &RawPluginSettings,
    host_id: &str,
) -> crate::PluginSettings {
    let deadline = p.duration("plugins.deadline", &raw.deadline, Duration::from_millis(50));
    if deadline < Duration::from_millis(10) || deadline > Duration::from_secs(10) {
        p.push(
            "plugins.deadline",
            format!("must be between 10ms and 10s ({deadline:?})"),
        );
    }
    let max_memory = p
        .size("plugins.max_memory", &raw.max_memory)
        .unwrap_or(64 << 20);
    if !(1 << 20..=4 << 30).contains(&max_memory) {
        p.push("plugins.max_memory", "must be between 1m and 4g");
    }
    let bench_after = raw.bench_after.unwrap_or(5);
    if bench_after == 0 {
        p.push("plugins.bench_after", "must be ≥ 1");
    }
    let cache_dir = raw.cache_dir.as_ref().map_or_else(
        || std::env::temp_dir().join(format!("warmpool-plugin-cache-{host_id}")),
        std::path::PathBuf::from,
    );
    crate::PluginSettings {
        cache_dir,
        deadline,
        max_memory: max_memory as usize,
        bench_after,
    }
}

/// A plugin entry: its path, and its config flattened to text pairs for the guest's `init`.
fn plugin_ref(
    p: &mut Problems,
    path: &str,
    raw: &Option<RawPluginRef>,
) -> Option<crate::PluginRef> {
    let raw = raw.as_ref()?;
    if raw.path.trim().is_empty() {
        p.push(format!("{path}.path"), "must name a .wasm file");
    }
    let mut config = Vec::new();
    for (k, v) in &raw.config {
        let key = key_name(k);
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            // Nested values reach the guest as JSON, which every language can read.
            other => match serde_json::to_string(other) {
                Ok(j) => j,
                Err(e) => {
                    p.push(
                        format!("{path}.config.{key}"),
                        format!("cannot be passed to the plugin: {e}"),
                    );
                    continue;
                }
            },
        };
        config.push((key, text));
    }
    Some(crate::PluginRef {
        path: raw.path.clone().into(),
        config,
    })
}

fn validate_pool(p: &mut Problems, path: &str, name: String, raw: RawPool) -> PoolPlan {
    let at = |k: &str| format!("{path}.{k}");
    if raw.image.trim().is_empty() {
        p.push(at("image"), "must name an image");
    }
    let min_ready = raw.min_ready.unwrap_or(1);
    let max_ready = raw.max_ready.unwrap_or(min_ready.max(1));
    let max_total = raw.max_total.unwrap_or(max_ready + 10);
    if min_ready > max_ready {
        p.push(
            at("min_ready"),
            format!("must be ≤ max_ready ({min_ready} > {max_ready})"),
        );
    }
    if max_ready > max_total {
        p.push(
            at("max_ready"),
            format!("must be ≤ max_total ({max_ready} > {max_total})"),
        );
    }
    if max_total == 0 {
        p.push(at("max_total"), "must be ≥ 1");
    }
    let default_ttl = p.duration(
        &at("lease.default_ttl"),
        &raw.lease.default_ttl,
        Duration::from_secs(600),
    );
    let max_ttl = p.duration(
        &at("lease.max_ttl"),
        &raw.lease.max_ttl,
        Duration::from_secs(3600).max(default_ttl),
    );
    if default_ttl.is_zero() {
        p.push(at("lease.default_ttl"), "must be > 0");
    }
    if default_ttl > max_ttl {
        p.push(
            at("lease.default_ttl"),
            format!("must be ≤ lease.max_ttl ({default_ttl:?} > {max_ttl:?})"),
        );
    }
    let max_warm_age = raw.lifecycle.max_warm_age.as_ref().map(|_| {
        p.duration(
            &at("lifecycle.max_warm_age"),
            &raw.lifecycle.max_warm_age,
            Duration::from_secs(1800),
        )
    });
    if max_warm_age.is_some_and(|d| d < Duration::from_secs(1)) {
        p.push(at("lifecycle.max_warm_age"), "must be ≥ 1s");
    }
    let max_lifetime = raw.lifecycle.max_lifetime.as_ref().map(|_| {
        p.duration(
            &at("lifecycle.max_lifetime"),
            &raw.lifecycle.max_lifetime,
            Duration::from_secs(3600),
        )
    });
    let image_check_interval = p.duration(
        &at("lifecycle.image_check_interval"),
        &raw.lifecycle.image_check_interval,
        Duration::from_secs(30),
    );
    if image_check_interval < Duration::from_millis(100) {
        p.push(at("lifecycle.image_check_interval"), "must be ≥ 100ms");
    }
    let reuse = if raw.reuse.enabled {
        let r = &raw.reuse;
        let max_uses = r.max_uses.unwrap_or(10);
        if max_uses < 2 {
            p.push(
                at("reuse.max_uses"),
                "must be ≥ 2 (1 is single-use: disable reuse instead)",
            );
        }
        // Reuse is only safe when the reset is explicit and its result is checked.
        if r.reset.is_empty() {
            p.push(at("reuse.reset"), "reuse needs at least one reset command");
        }
        if r.verify.is_empty() {
            p.push(
                at("reuse.verify"),
                "reuse needs at least one verify command that proves the reset",
            );
        }
        Some(warmpool_core::ReuseConfig {
            max_uses,
            reset: r.reset.iter().map(Command::argv).collect(),
            verify: r.verify.iter().map(Command::argv).collect(),
            timeout: p.duration(&at("reuse.timeout"), &r.timeout, Duration::from_secs(30)),
        })
    } else {
        None
    };
    let idle_timeout = p.duration(
        &at("lifecycle.idle_timeout"),
        &raw.lifecycle.idle_timeout,
        Duration::from_secs(600),
    );
    let wait_timeout = p.duration(
        &at("exhaustion.wait_timeout"),
        &raw.exhaustion.wait_timeout,
        Duration::from_secs(30),
    );
    let setup_timeout = p.duration(
        &at("setup_timeout"),
        &raw.setup_timeout,
        Duration::from_secs(120),
    );

    let memory = p.size(&at("memory"), &raw.memory).unwrap_or(512 << 20);
    if memory < 6 << 20 {
        p.push(
            at("memory"),
            format!("must be ≥ 6m, Docker's minimum ({memory} bytes)"),
        );
    }
    let nano_cpus = match raw.cpus {
        Some(c) if !(c > 0.0 && c <= 1024.0) => {
            p.push(at("cpus"), format!("must be > 0 ({c})"));
            None
        }
        Some(c) => Some((c * 1e9) as i64),
        None => None,
    };
    let pids_limit = raw.pids_limit.unwrap_or(256);
    if pids_limit == 0 || pids_limit < -1 {
        p.push(at("pids_limit"), "must be ≥ 1, or -1 for unlimited");
    }
    for k in raw.labels.keys() {
        if k.starts_with("warmpool.") {
            p.push(
                format!("{path}.labels.{k}"),
                "the warmpool.* labels are reserved",
            );
        }
    }
    let cmd = raw
        .cmd
        .map_or_else(|| vec!["sleep".into(), "infinity".into()], |c| c.argv());
    if cmd.is_empty() {
        p.push(
            at("cmd"),
            "must not be empty (omit it to keep the container alive with `sleep infinity`)",
        );
    }
    let setup: Vec<Vec<String>> = raw.setup.iter().map(Command::argv).collect();
    for (i, c) in setup.iter().enumerate() {
        if c.is_empty() || c[0].is_empty() {
            p.push(format!("{path}.setup[{i}]"), "must not be empty");
        }
    }
    let health = raw.health.as_ref().and_then(|h| {
        let interval = p.duration(&at("health.interval"), &h.interval, Duration::from_secs(30));
        let timeout = p.duration(&at("health.timeout"), &h.timeout, Duration::from_secs(5));
        if interval < Duration::from_millis(100) {
            p.push(at("health.interval"), "must be ≥ 100ms");
        }
        let timeout_ms = timeout.as_millis() as u64;
        let plan = match (&h.cmd, &h.http) {
            (Some(c), None) if !c.argv().is_empty() => Some(HealthPlan::Exec(ExecProbe {
                argv: c.argv(),
                timeout_ms,
            })),
            (None, Some(http)) => Some(HealthPlan::Http(HttpProbe {
                port: http.port,
                path: http.path.clone(),
                timeout_ms,
            })),
            (Some(_), Some(_)) => {
                p.push(at("health"), "give either cmd or http, not both");
                None
            }
            _ => {
                p.push(
                    at("health"),
                    "needs a probe: cmd (a command) or http (port, path)",
                );
                None
            }
        };
        plan.map(|pl| (interval, pl))
    });
    let (health_interval, health) = match health {
        Some((i, pl)) => (i, Some(pl)),
        None => (Duration::from_secs(30), None),
    };
    let sizing_window = p.duration(
        &at("sizing.burst_window"),
        &raw.sizing.burst_window,
        Duration::from_secs(10),
    );
    let cooldown = p.duration(
        &at("sizing.cooldown"),
        &raw.sizing.cooldown,
        Duration::from_secs(30),
    );
    let sizing = match raw.sizing.policy.unwrap_or(SizingKind::Adaptive) {
        SizingKind::Fixed => BuiltinSizing::Fixed,
        SizingKind::Adaptive => BuiltinSizing::Adaptive(AdaptiveConfig {
            burst_window_ms: sizing_window.as_millis() as u64,
            cooldown_ms: cooldown.as_millis() as u64,
        }),
    };
    let exhaustion = match raw.exhaustion.strategy.unwrap_or(Strategy::Cold) {
        Strategy::Wait => BuiltinExhaustion::Wait,
        Strategy::Fail => BuiltinExhaustion::Fail,
        Strategy::Cold => BuiltinExhaustion::Cold,
    };
    let spec = ContainerSpec {
        image: raw.image,
        cmd,
        env: raw.env,
        workdir: raw.workdir,
        user: raw.user,
        labels: raw.labels,
        memory: Some(memory as i64),
        nano_cpus,
        pids_limit: Some(pids_limit),
        network: raw.network.unwrap_or_else(|| "none".into()),
        read_only: raw.read_only.unwrap_or(false),
        init: raw.init.unwrap_or(true),
        cap_drop: raw.cap_drop.unwrap_or_else(|| vec!["ALL".into()]),
        cap_add: raw.cap_add,
        no_new_privileges: raw.no_new_privileges.unwrap_or(true),
        setup,
        setup_timeout,
    };
    PoolPlan {
        pool: PoolConfig {
            name,
            spec,
            min_ready,
            max_ready,
            max_total,
            default_ttl,
            max_ttl,
            max_warm_age,
            idle_timeout,
            wait_timeout,
            health_interval,
            max_lifetime,
            image_check_interval,
            reuse,
        },
        sizing,
        exhaustion,
        health,
        plugins: crate::PoolPlugins {
            sizing: plugin_ref(p, &at("plugins.sizing"), &raw.plugins.sizing),
            exhaustion: plugin_ref(p, &at("plugins.exhaustion"), &raw.plugins.exhaustion),
            health: plugin_ref(p, &at("plugins.health"), &raw.plugins.health),
        },
    }
}
