//! The `docker:` section: one engine (`endpoint`) or several (`engines`), validated into
//! [`EngineConfig`]s. A single `endpoint` is a set of one engine named `default`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::problems::Problems;
use crate::raw::{RawDocker, RawEngine};

/// Most engines one daemon drives (the core keeps a set of engines in a 64-bit mask).
pub const MAX_ENGINES: usize = 64;

/// The validated `docker:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    /// Every engine, in config order; at least one.
    pub engines: Vec<EngineConfig>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            engines: vec![EngineConfig::local(None)],
        }
    }
}

/// One engine: how to reach it, its cap and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Unique name.
    pub name: String,
    /// `unix://…`, `tcp://…`, `http://…`, `https://…` or `ssh://…`; `None`: `DOCKER_HOST` or
    /// the local socket.
    pub endpoint: Option<String>,
    /// Client certificate files, for TLS.
    pub tls: Option<TlsFiles>,
    /// This engine's own cap, under the global one.
    pub max_containers: Option<u32>,
    /// Labels an acquire may ask for.
    pub labels: BTreeMap<String, String>,
}

impl EngineConfig {
    /// The one engine of `docker.endpoint`.
    pub fn local(endpoint: Option<String>) -> Self {
        Self {
            name: "default".into(),
            endpoint,
            tls: None,
            max_containers: None,
            labels: BTreeMap::new(),
        }
    }

    /// The endpoint with any credentials (`user:password@`) cut out, for logs and the API.
    pub fn redacted_endpoint(&self) -> String {
        let Some(ep) = &self.endpoint else {
            return "DOCKER_HOST or unix:///var/run/docker.sock".into();
        };
        match (ep.find("://"), ep.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***@{}", &ep[..s], &ep[at + 1..]),
            _ => ep.clone(),
        }
    }
}

/// PEM files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// This client's certificate.
    pub cert: PathBuf,
    /// This client's private key.
    pub key: PathBuf,
}

const SCHEMES: [&str; 5] = ["unix://", "tcp://", "http://", "https://", "ssh://"];

/// Validate `docker:`; every problem is reported with its YAML path.
pub(crate) fn validate_docker(p: &mut Problems, docker: RawDocker) -> DockerConfig {
    match (docker.endpoint, docker.engines) {
        (Some(_), Some(_)) => {
            p.push(
                "docker",
                "give either endpoint (one engine) or engines, not both",
            );
            DockerConfig::default()
        }
        (endpoint, None) => {
            if let Some(ep) = &endpoint {
                check_endpoint(p, "docker.endpoint", ep);
            }
            DockerConfig {
                engines: vec![EngineConfig::local(endpoint)],
            }
        }
        (None, Some(raw)) => {
            if raw.is_empty() {
                p.push("docker.engines", "must list at least one engine");
            }
            if raw.len() > MAX_ENGINES {
                p.push(
                    "docker.engines",
                    format!("at most {MAX_ENGINES} engines ({} given)", raw.len()),
                );
            }
            let mut names = BTreeSet::new();
            let engines: Vec<EngineConfig> = raw
                .into_iter()
                .enumerate()
                .map(|(i, e)| validate_engine(p, &format!("docker.engines[{i}]"), e, &mut names))
                .collect();
            if engines.is_empty() {
                DockerConfig::default()
            } else {
                DockerConfig { engines }
            }
        }
    }
}

fn validate_engine(
    p: &mut Problems,
    at: &str,
    e: RawEngine,
    names: &mut BTreeSet<String>,
) -> EngineConfig {
    let name = e.name.unwrap_or_default();
    if !valid_name(&name) {
        p.push(
            format!("{at}.name"),
            format!("{name:?} must be 1-40 of a-z, 0-9, '-' and '_'"),
        );
    } else if !names.insert(name.clone()) {
        p.push(
            format!("{at}.name"),
            format!("engine {name:?} is listed twice"),
        );
    }
    match &e.endpoint {
        Some(ep) => check_endpoint(p, &format!("{at}.endpoint"), ep),
        None => p.push(format!("{at}.endpoint"), "is required"),
    }
    let tls = e.tls.map(|t| {
        let scheme_ok = e
            .endpoint
            .as_deref()
            .is_some_and(|ep| ep.starts_with("tcp://") || ep.starts_with("https://"));
        if !scheme_ok {
            p.push(
                format!("{at}.tls"),
                "TLS needs a tcp:// or https:// endpoint",
            );
        }
        let mut file = |key: &str, v: Option<String>| {
            let path = format!("{at}.tls.{key}");
            match v {
                None => {
                    p.push(path, "is required");
                    PathBuf::new()
                }
                Some(f) => {
                    let pb = PathBuf::from(&f);
                    if !pb.is_file() {
                        p.push(path, format!("{f:?} is not a readable file"));
                    }
                    pb
                }
            }
        };
        TlsFiles {
            ca: file("ca", t.ca),
            cert: file("cert", t.cert),
            key: file("key", t.key),
        }
    });
    if let Some(m) = e.max_containers
        && !(1..=100_000).contains(&m)
    {
        p.push(format!("{at}.max_containers"), "must be 1-100000");
    }
    let labels = e.labels.unwrap_or_default();
    if labels.len() > 32 {
        p.push(format!("{at}.labels"), "at most 32 labels");
    }
    for (k, v) in &labels {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            p.push(
                format!("{at}.labels.{k}"),
                "keys must be 1-128 bytes and values at most 256",
            );
        }
    }
    EngineConfig {
        name,
        endpoint: e.endpoint,
        tls,
        max_containers: e.max_containers,
        labels,
    }
}

fn check_endpoint(p: &mut Problems, at: &str, ep: &str) {
    let Some(scheme) = SCHEMES.iter().find(|s| ep.starts_with(**s)) else {
        p.push(
            at,
            format!("{ep:?} must start with unix://, tcp://, http://, https:// or ssh://"),
        );
        return;
    };
    let rest = &ep[scheme.len()..];
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        p.push(at, format!("{ep:?} names no host or socket"));
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 40
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
