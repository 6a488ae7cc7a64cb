//! Layer two: raw structs to domain types, collecting every problem with its YAML path. The
//! server, docker and limits sections are here; each pool, and the plugin settings, in
//! `pool.rs`; the shared toolkit in `problems.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_yaml::Value;
use warmpool_core::{BreakerConfig, ManagerConfig};

use crate::problems::{Problems, bounded, key_name};
use crate::raw::*;
use crate::{AllowedHost, Config, PoolPlan, Problem, ServerConfig};

const TOP_KEYS: [&str; 5] = ["server", "docker", "limits", "pools", "plugins"];

pub use crate::problems::MAX_CONTAINERS;

/// Parse YAML `text`, apply `WARMPOOL_*` overrides from `vars`, and validate the result
/// into a [`Config`], or return every problem found, each at its path.
pub fn validate(
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Vec<Problem>> {
    bounded(text).map_err(|p| vec![p])?;
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

    let mut raw_server: RawServer = p.section("server", map.get("server")).unwrap_or_default();
    let exec_output_limit = p.size_in(
        "server.exec_output_bytes",
        &raw_server.exec_output_bytes,
        1 << 20,
        1,
        64 << 20,
    );
    let raw_tenants = raw_server.tenants.take().unwrap_or_default();
    let legacy_admin = raw_server.auth_token_env.is_some();
    let mut server = validate_server(&mut p, raw_server);
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

    let names = pools.iter().map(|pp| pp.pool.name.as_str()).collect();
    let tenants = crate::tenants::validate_tenants(&mut p, raw_tenants, legacy_admin, &names);
    if let Some(s) = &mut server {
        s.tenants = tenants;
    }
    let mut manager = validate_limits(&mut p, &limits, &pools);
    manager.exec_output_limit = exec_output_limit as usize;
    if let Some(s) = &server {
        manager.commit_interval = s.commit_interval;
        manager.keep_on_shutdown = s.keep_on_shutdown;
    }
    let docker = crate::docker::validate_docker(&mut p, docker);
    let engine_caps: u32 = docker
        .engines
        .iter()
        .map(|e| e.max_containers.unwrap_or(u32::MAX))
        .fold(0u32, u32::saturating_add);
    let min_ready: u32 = pools.iter().map(|pp| pp.pool.min_ready).sum();
    if engine_caps < min_ready {
        p.push(
            "docker.engines",
            format!("the engines' max_containers add up to {engine_caps}, below the pools' min_ready sum of {min_ready}"),
        );
    }
    let plugins = crate::plugins::validate_plugin_settings(
        &mut p,
        &raw_plugins,
        server.as_ref().map_or("default", |s| s.host_id.as_str()),
    );
    match (p.0.is_empty(), server) {
        (true, Some(server)) => Ok(Config {
            server,
            docker,
            manager,
            pools,
            plugins,
        }),
        _ => Err(p.0),
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
    // The host id is a Docker label value and part of a directory name: keep it plain.
    if host_id.is_empty()
        || host_id.len() > 128
        || !host_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        p.push(
            "server.host_id",
            "must be 1-128 characters of a-z, A-Z, 0-9, '-', '_' and '.'",
        );
    }
    if let Some(var) = &raw.auth_token_env
        && var.is_empty()
    {
        p.push("server.auth_token_env", "must name an environment variable");
    }
    let max_request_bytes = p.size_in(
        "server.max_request_bytes",
        &raw.max_request_bytes,
        1 << 20,
        1 << 10,
        64 << 20,
    );
    let max_upload_bytes = p.size_in(
        "server.max_upload_bytes",
        &raw.max_upload_bytes,
        64 << 20,
        1,
        64 << 30,
    );
    let shutdown_grace = p.duration_in(
        "server.shutdown_grace",
        &raw.shutdown_grace,
        Duration::from_secs(20),
        Duration::ZERO,
        Duration::from_secs(600),
    );
    let commit_interval = p.duration_in(
        "server.commit_interval",
        &raw.commit_interval,
        Duration::from_millis(20),
        Duration::from_millis(1),
        Duration::from_secs(1),
    );
    let mut allowed_hosts = Vec::new();
    let mut allow_any_host = false;
    for (i, entry) in raw.allowed_hosts.iter().flatten().enumerate() {
        match allowed_host(entry) {
            Ok(None) => allow_any_host = true,
            Ok(Some(h)) => allowed_hosts.push(h),
            Err(why) => p.push(format!("server.allowed_hosts[{i}]"), why),
        }
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
        // Validated once the pools are known (`validate`).
        tenants: Vec::new(),
        listen: listen?,
        state_dir: raw
            .state_dir
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from),
        commit_interval,
        keep_on_shutdown,
        auth_token_env: raw.auth_token_env,
        allowed_hosts,
        allow_any_host,
        host_id,
        max_request_bytes: max_request_bytes as usize,
        max_upload_bytes: max_upload_bytes as usize,
        shutdown_grace,
        audit_log: raw.audit_log.as_ref().map(std::path::PathBuf::from),
    })
}

/// One `server.allowed_hosts` entry: `None` for `"*"`, else a name (a DNS name or an IP
/// address, IPv6 in brackets) with an optional port.
fn allowed_host(entry: &str) -> Result<Option<AllowedHost>, String> {
    const FORM: &str = "write a host name or IP address, optionally with :port \
                        (e.g. pool.example or pool.example:7070), or \"*\" for any";
    if entry == "*" {
        return Ok(None);
    }
    if entry.is_empty() {
        return Err(format!("is empty: {FORM}"));
    }
    if entry.contains('/') {
        return Err(format!("{entry:?} is a URL or path: {FORM}"));
    }
    let (name, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{entry:?} opens a bracket it does not close"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{entry:?}: {v6:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("{entry:?}: expected :port after the address"))?,
            ),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match entry.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (entry, None),
        };
        if name.contains(':') {
            return Err(format!(
                "{entry:?}: write an IPv6 address in brackets, e.g. [::1] or [::1]:7070"
            ));
        }
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !plain {
            return Err(format!(
                "{entry:?}: a name uses letters, digits, '-', '_' and '.' only (no wildcards \
                 but a lone \"*\"): {FORM}"
            ));
        }
        (name.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("{entry:?}: {p:?} is not a port (1-65535)")),
        },
    };
    Ok(Some(AllowedHost { name, port }))
}

fn validate_limits(p: &mut Problems, raw: &RawLimits, pools: &[PoolPlan]) -> ManagerConfig {
    let d = ManagerConfig::default();
    let max_containers = p.count_in(
        "limits.max_containers",
        raw.max_containers,
        d.max_containers,
        1,
        MAX_CONTAINERS,
    );
    let min_sum: u64 = pools.iter().map(|pl| u64::from(pl.pool.min_ready)).sum();
    if min_sum > u64::from(max_containers) {
        p.push(
            "limits.max_containers",
            format!("must be ≥ the sum of the pools' min_ready ({min_sum} > {max_containers})"),
        );
    }
    let creates = p.count_in(
        "limits.max_concurrent_creates",
        raw.max_concurrent_creates,
        d.max_concurrent_creates as u32,
        1,
        256,
    );
    let removes = p.count_in(
        "limits.max_concurrent_removes",
        raw.max_concurrent_removes,
        d.max_concurrent_removes as u32,
        1,
        256,
    );
    let sweep_interval = p.duration_in(
        "limits.sweep_interval",
        &raw.sweep_interval,
        d.sweep_interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    ManagerConfig {
        max_containers,
        max_concurrent_creates: creates as usize,
        max_concurrent_removes: removes as usize,
        sweep_interval,
        breaker: BreakerConfig::default(),
        ..d
    }
}
