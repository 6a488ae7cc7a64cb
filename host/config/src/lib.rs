//! # warmpool-config: `warmpool.yaml` in two layers
//!
//! Layer one ([`raw`]) is serde structs that mirror the YAML and deny unknown keys. Layer two
//! ([`validate`], and `pool.rs` for each pool) turns them into the domain types the daemon runs on ([`Config`], and
//! `warmpool_core::PoolConfig` per pool). Every problem is collected with its YAML path, e.g.
//! `pools.python.min_ready: must be ≤ max_ready (5 > 3)`, and all are reported together.
//! [`env`] applies `WARMPOOL_*` overrides before either layer runs.
//!
//! [`ReloadPlan`] (in `reload.rs`) decides what a reload does with a new config: which pools are
//! added, removed or changed (their policies rebuilt, their container spec changed), and which
//! settings apply only at a restart.
//!
//! See `README.md#configuration` for every key and its default.

mod docker;
pub mod env;
mod plugins;
mod pool;
mod problems;
pub mod raw;
mod reload;
mod resources;
pub mod tenants;
pub mod validate;

pub use docker::{DockerConfig, EngineConfig, MAX_ENGINES, TlsFiles};
pub use problems::parse_size;
pub use reload::{PoolReload, ReloadPlan};

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use warmpool_core::policy_logic::health::{ExecProbe, HttpProbe};
use warmpool_core::{BuiltinExhaustion, BuiltinSizing, ManagerConfig, PoolConfig};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// From `server:`: listener, auth, request bounds and persistence.
    pub server: ServerConfig,
    /// From `docker:`: how to reach the engine.
    pub docker: DockerConfig,
    /// From `limits:`, plus `server.exec_output_bytes`, `commit_interval` and `keep_on_shutdown`.
    pub manager: ManagerConfig,
    /// From `pools:`: one plan per pool, in the order written.
    pub pools: Vec<PoolPlan>,
    /// From top-level `plugins:`: limits and cache for every plugin.
    pub plugins: PluginSettings,
}

/// Limits and cache shared by all plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSettings {
    /// Where compiled components are cached (created 0700).
    pub cache_dir: std::path::PathBuf,
    /// Longest one plugin call may run, in wall-clock time (instantiation included when a
    /// call needs a fresh instance).
    pub deadline: Duration,
    /// Longest loading a new version may take: instantiation and `init` (the trial call then
    /// has `deadline`).
    pub load_deadline: Duration,
    /// Memory cap per plugin instance, in bytes.
    pub max_memory: usize,
    /// Consecutive failures that bench a plugin until its file changes.
    pub bench_after: u32,
}

/// A pool's plugin for one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The `.wasm` file; [`load`] resolves a relative path against the config file's directory.
    pub path: std::path::PathBuf,
    /// Scalars as text; nested values as JSON text.
    pub config: Vec<(String, String)>,
}

/// A pool's plugins, one per decision; `None` leaves the decision to the built-in policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolPlugins {
    /// Sets the ready target (`plugins.sizing`).
    pub sizing: Option<PluginRef>,
    /// Answers an acquire when nothing is ready (`plugins.exhaustion`).
    pub exhaustion: Option<PluginRef>,
    /// Plans health probes and judges their results (`plugins.health`).
    pub health: Option<PluginRef>,
}

/// The validated `server:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address and port the API listens on (default `127.0.0.1:7070`).
    pub listen: SocketAddr,
    /// Name of the environment variable holding the bearer token, if auth is on.
    pub auth_token_env: Option<String>,
    /// `server.allowed_hosts` without `"*"`: names the API answers to in `Host` besides
    /// `localhost` and IP addresses on the listening port.
    pub allowed_hosts: Vec<AllowedHost>,
    /// `"*"` in `server.allowed_hosts`: any `Host` is served (the DNS rebinding guard is off).
    pub allow_any_host: bool,
    /// Identifies this daemon's containers (`warmpool.host` label); defaults to the hostname.
    pub host_id: String,
    /// Largest JSON request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest file upload, in bytes.
    pub max_upload_bytes: usize,
    /// Bound on graceful shutdown.
    pub shutdown_grace: Duration,
    /// Append every lifecycle event to this file as a JSON line.
    pub audit_log: Option<std::path::PathBuf>,
    /// Where leases are persisted (one redb file). `None`: nothing survives a restart, and
    /// startup removes every container of this host id.
    pub state_dir: Option<std::path::PathBuf>,
    /// Group-commit period of the state store; a lease older than this survives a crash.
    pub commit_interval: Duration,
    /// Leave leases and never-lent ready containers running at shutdown (needs `state_dir`).
    pub keep_on_shutdown: bool,
    /// `server.tenants`: who may call the API; the tokens are read at `serve` time.
    pub tenants: Vec<tenants::TenantConfig>,
}

/// One entry of `server.allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// The name in lower case, or an IP address (IPv6 in brackets).
    pub name: String,
    /// Its one port; `None`: any.
    pub port: Option<u16>,
}

/// One pool: its settings and which built-in policies serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    /// The pool's name, container spec, sizes and timings.
    pub pool: PoolConfig,
    /// Built-in sizing policy; also the fallback for a sizing plugin.
    pub sizing: BuiltinSizing,
    /// Built-in exhaustion strategy; also the fallback for an exhaustion plugin.
    pub exhaustion: BuiltinExhaustion,
    /// Built-in health probe; `None` when the pool has no `health:`.
    pub health: Option<HealthPlan>,
    /// Wasm plugins configured for this pool.
    pub plugins: PoolPlugins,
}

/// A pool's built-in health probe.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthPlan {
    /// Run a command in the container (`health.cmd`).
    Exec(ExecProbe),
    /// GET a path on a container port (`health.http`).
    Http(HttpProbe),
}

/// One problem in a config, at a YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a YAML path such as `pools.python.min_ready`, or `(yaml)`, `(file)`, `env NAME`.
    pub path: String,
    /// What is wrong, e.g. `must be ≤ max_ready (5 > 3)`.
    pub message: String,
}

impl Problem {
    /// A problem at `path` saying `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything wrong with a config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Names the config in messages: the path given to [`load`], or the name given to [`parse`].
    pub source_name: String,
    /// Every problem found, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Read, override from the process environment, and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let read_err = |message: String| ConfigError {
        source_name: name.clone(),
        problems: vec![Problem::new("(file)", message)],
    };
    // Bounded read: a huge file is refused without being read whole.
    let mut text = String::new();
    {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| read_err(format!("cannot read: {e}")))?;
        f.take(problems::MAX_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| read_err(format!("cannot read: {e}")))?;
    }
    let mut cfg = parse(&text, &name, std::env::vars())?;
    // Plugin paths are relative to the config file, wherever the daemon was started.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for plan in &mut cfg.pools {
        for r in [
            &mut plan.plugins.sizing,
            &mut plan.plugins.exhaustion,
            &mut plan.plugins.health,
        ]
        .into_iter()
        .flatten()
        {
            if r.path.is_relative() {
                r.path = base.join(&r.path);
            }
        }
    }
    Ok(cfg)
}

/// Validate config text, with `vars` as the environment for overrides.
pub fn parse(
    text: &str,
    source_name: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    validate::validate(text, vars).map_err(|problems| ConfigError {
        source_name: source_name.into(),
        problems,
    })
}

impl Config {
    /// Read every tenant's token (`server.auth_token_env` is the admin tenant
    /// [`tenants::LEGACY_ADMIN`]) and refuse an open non-loopback listener. Run at `serve`
    /// time, since it reads the environment the daemon starts in. Empty: the API is open.
    /// Every problem is reported, and two tenants may not share a token.
    pub fn tenants(&self) -> Result<Vec<tenants::ResolvedTenant>, String> {
        self.tenants_with(&|var| std::env::var(var).ok())
    }

    /// [`Config::tenants`], reading environment variables through `env`.
    pub fn tenants_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<tenants::ResolvedTenant>, String> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        if let Some(var) = &self.server.auth_token_env {
            match env(var) {
                Some(t) if !t.is_empty() => out.push(tenants::ResolvedTenant {
                    tenant: tenants::TenantConfig {
                        name: tenants::LEGACY_ADMIN.into(),
                        token: tenants::TokenSource::Env(var.clone()),
                        pools: None,
                        quotas: tenants::Quotas::default(),
                        admin: true,
                    },
                    token: t,
                }),
                _ => problems.push(format!(
                    "server.auth_token_env: environment variable {var} is not set or empty"
                )),
            }
        }
        for (i, t) in self.server.tenants.iter().enumerate() {
            match tenants::read_token(i, t, env) {
                Ok(token) => {
                    if let Some(other) = out.iter().find(|o| o.token == token) {
                        problems.push(format!(
                            "server.tenants[{i}]: its token is also tenant {:?}'s; each tenant needs its own",
                            other.tenant.name
                        ));
                    }
                    out.push(tenants::ResolvedTenant {
                        tenant: t.clone(),
                        token,
                    });
                }
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        if out.is_empty() && !self.server.listen.ip().is_loopback() {
            return Err(format!(
                "server.listen: {} is not a loopback address; set server.auth_token_env or server.tenants to require a token",
                self.server.listen
            ));
        }
        Ok(out)
    }
}
