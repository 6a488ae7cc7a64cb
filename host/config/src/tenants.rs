//! `server.tenants`: who may call the API, with what token, on which pools, within which
//! quotas. Validated here like every other section (each problem by its YAML path); the tokens
//! themselves are read at `serve` time ([`crate::Config::tenants`]), from an environment
//! variable or a file, never from the config text.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::problems::Problems;

/// One entry of `server.tenants`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// `name`: 1-64 of `[a-z0-9_-]`, unique; shown on its leases, events and metrics.
    pub name: Option<String>,
    /// `token_env`: the environment variable holding the tenant's bearer token.
    pub token_env: Option<String>,
    /// `token_file`: a file holding it (trailing newline ignored), e.g. a mounted secret.
    pub token_file: Option<String>,
    /// `pools`: the pools it may use; absent: every pool.
    pub pools: Option<Vec<String>>,
    /// `quotas`: its limits; absent: none.
    pub quotas: Option<RawQuotas>,
    /// `admin`: sees everything, and alone may reload, scale, warm up and see engines.
    pub admin: Option<bool>,
}

/// `quotas:` of a tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotas {
    /// `max_leases`: leases held at once.
    pub max_leases: Option<u32>,
    /// `acquires_per_s`: acquires per second, as a token bucket of one second's worth.
    pub acquires_per_s: Option<f64>,
    /// `lease_seconds_per_hour`: lease time granted per hour (a TTL is charged at acquire and
    /// renew, its unused part given back at release).
    pub lease_seconds_per_hour: Option<u64>,
}

/// Where a tenant's token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable of the daemon.
    Env(String),
    /// A file.
    File(std::path::PathBuf),
}

/// A tenant's quotas; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quotas {
    /// Leases held at once.
    pub max_leases: Option<u32>,
    /// Acquires per second.
    pub acquires_per_s: Option<f64>,
    /// Lease-seconds per hour.
    pub lease_seconds_per_hour: Option<u64>,
}

/// A validated tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// Its name.
    pub name: String,
    /// Where its token is.
    pub token: TokenSource,
    /// The pools it may use; `None`: every pool.
    pub pools: Option<BTreeSet<String>>,
    /// Its quotas.
    pub quotas: Quotas,
    /// An admin sees and may do everything.
    pub admin: bool,
}

/// The name of the admin tenant that `server.auth_token_env` stands for.
pub const LEGACY_ADMIN: &str = "admin";

/// A tenant with its token read: what the API keeps (it hashes the token at once). Its
/// `Debug` hides the token.
#[derive(Clone)]
pub struct ResolvedTenant {
    /// The tenant.
    pub tenant: TenantConfig,
    /// Its bearer token.
    pub token: String,
}

impl std::fmt::Debug for ResolvedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedTenant")
            .field("tenant", &self.tenant)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Longest tenant list (a bound on what a config file can make the daemon hold).
pub const MAX_TENANTS: usize = 1000;

pub(crate) fn valid_tenant_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Validate `server.tenants`; `legacy` is whether `server.auth_token_env` is set (its tenant
/// is named [`LEGACY_ADMIN`], so no other may be).
pub(crate) fn validate_tenants(
    p: &mut Problems,
    raw: Vec<serde_yaml::Value>,
    legacy: bool,
    pools: &BTreeSet<&str>,
) -> Vec<TenantConfig> {
    if raw.len() > MAX_TENANTS {
        p.push(
            "server.tenants",
            format!("at most {MAX_TENANTS} tenants (it has {})", raw.len()),
        );
        return Vec::new();
    }
    let mut names = BTreeSet::new();
    if legacy {
        names.insert(LEGACY_ADMIN.to_string());
    }
    let mut out = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let path = format!("server.tenants[{i}]");
        let Some(t) = p.de::<RawTenant>(&path, v) else {
            continue;
        };
        let name = match t.name {
            Some(n) if valid_tenant_name(&n) => n,
            Some(n) => {
                p.push(
                    format!("{path}.name"),
                    format!("{n:?}: use 1-64 of a-z, 0-9, '-' and '_'"),
                );
                continue;
            }
            None => {
                p.push(format!("{path}.name"), "is required");
                continue;
            }
        };
        if !names.insert(name.clone()) {
            let why = if legacy && name == LEGACY_ADMIN {
                "is taken by server.auth_token_env's admin tenant"
            } else {
                "another tenant has this name"
            };
            p.push(format!("{path}.name"), format!("{name:?} {why}"));
        }
        let token = match (t.token_env, t.token_file) {
            (Some(v), None) if !v.is_empty() => TokenSource::Env(v),
            (None, Some(f)) if !f.is_empty() => TokenSource::File(f.into()),
            (Some(_), Some(_)) => {
                p.push(&path, "set one of token_env and token_file, not both");
                continue;
            }
            (None, None) => {
                p.push(&path, "needs token_env or token_file");
                continue;
            }
            _ => {
                p.push(&path, "token_env or token_file is empty");
                continue;
            }
        };
        for (j, pool) in t.pools.iter().flatten().enumerate() {
            if !pools.contains(pool.as_str()) {
                p.push(
                    format!("{path}.pools[{j}]"),
                    format!("no pool is named {pool:?}"),
                );
            }
        }
        let admin = t.admin.unwrap_or(false);
        if admin && t.pools.is_some() {
            p.push(
                format!("{path}.pools"),
                "an admin tenant may use every pool; remove pools or admin",
            );
        }
        let q = t.quotas.unwrap_or_default();
        if q.max_leases == Some(0) {
            p.push(format!("{path}.quotas.max_leases"), "must be at least 1");
        }
        if let Some(r) = q.acquires_per_s
            && !(r.is_finite() && (0.001..=1_000_000.0).contains(&r))
        {
            p.push(
                format!("{path}.quotas.acquires_per_s"),
                "must be a number from 0.001 to 1000000",
            );
        }
        if q.lease_seconds_per_hour == Some(0) {
            p.push(
                format!("{path}.quotas.lease_seconds_per_hour"),
                "must be at least 1",
            );
        }
        out.push(TenantConfig {
            name,
            token,
            pools: t.pools.map(|v| v.into_iter().collect()),
            quotas: Quotas {
                max_leases: q.max_leases,
                acquires_per_s: q.acquires_per_s,
                lease_seconds_per_hour: q.lease_seconds_per_hour,
            },
            admin,
        });
    }
    out
}

/// Shortest tenant token: a guessable one would open a tenant's leases.
pub const MIN_TOKEN_LEN: usize = 16;

/// Read a tenant's token: the variable's value, or the file's content without its trailing
/// newline. At least [`MIN_TOKEN_LEN`] characters, at most 4 KiB.
pub(crate) fn read_token(
    i: usize,
    t: &TenantConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let (path, token) = match &t.token {
        TokenSource::Env(var) => (
            format!("server.tenants[{i}].token_env"),
            env(var).ok_or_else(|| format!("environment variable {var} is not set")),
        ),
        TokenSource::File(f) => (
            format!("server.tenants[{i}].token_file"),
            std::fs::read_to_string(f)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("cannot read {}: {e}", f.display())),
        ),
    };
    match token {
        Ok(t) if t.is_empty() => Err(format!("{path}: the token is empty")),
        Ok(t) if t.len() < MIN_TOKEN_LEN => Err(format!(
            "{path}: the token is shorter than {MIN_TOKEN_LEN} characters; use a random one (openssl rand -hex 24)"
        )),
        Ok(t) if t.len() > 4096 => Err(format!("{path}: the token is over 4 KiB")),
        Ok(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(format!(
            "{path}: the token holds whitespace or a control character"
        )),
        Ok(t) => Ok(t),
        Err(e) => Err(format!("{path}: {e}")),
    }
}
