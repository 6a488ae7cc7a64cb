//! Layer one: the YAML as written. Every struct denies unknown keys; every field is optional
//! where a default exists, so that [`crate::validate`] can report a missing value by its path.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Top-level `server:`: the API listener, auth, request bounds and state persistence.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `server.listen`: address:port to serve on (default `127.0.0.1:7070`).
    /// A non-loopback address needs `auth_token_env`.
    pub listen: Option<String>,
    /// `server.auth_token_env`: env var holding the bearer token; unset: no auth.
    pub auth_token_env: Option<String>,
    /// `server.allowed_hosts`: further names the API answers to in `Host`, each `name` (any
    /// port) or `name:port`, besides `localhost` and IP addresses on the listening port;
    /// `"*"` answers to any (the DNS rebinding guard is then off).
    pub allowed_hosts: Option<Vec<String>>,
    /// `server.host_id`: labels this daemon's containers; 1-128 of `[A-Za-z0-9._-]`.
    /// Default: the hostname.
    pub host_id: Option<String>,
    /// `server.max_request_bytes`: largest JSON body (default 1m, 1k..64m).
    pub max_request_bytes: Option<Size>,
    /// `server.max_upload_bytes`: largest file upload (default 64m, at most 64g).
    pub max_upload_bytes: Option<Size>,
    /// `server.exec_output_bytes`: bytes kept per stream of an exec (default 1m, at most 64m).
    pub exec_output_bytes: Option<Size>,
    /// `server.shutdown_grace`: bound on shutdown, a duration (default 20s, at most 10m).
    pub shutdown_grace: Option<String>,
    /// `server.audit_log`: file that gets every lifecycle event as a JSON line (off if unset).
    pub audit_log: Option<String>,
    /// `server.state_dir`: where leases persist (one redb file); unset: none survive a restart.
    pub state_dir: Option<String>,
    /// `server.commit_interval`: state store group-commit period (default 20ms, 1ms..1s).
    pub commit_interval: Option<String>,
    /// `server.keep_on_shutdown`: leave leases and unlent ready containers running at exit.
    /// Needs `state_dir`; default false.
    pub keep_on_shutdown: Option<bool>,
    /// `server.tenants`: who may call the API (see [`crate::tenants`]). Each entry is read on
    /// its own ([`crate::tenants::RawTenant`]), so one bad entry does not hide the others'
    /// problems.
    pub tenants: Option<Vec<serde_yaml::Value>>,
}

/// Top-level `docker:`: how to reach the Docker engine, or engines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    /// `docker.endpoint`: `unix://`, `tcp://`, `http://` or `https://` URL of the engine.
    /// Default: `DOCKER_HOST`, else the local socket. The same as `engines` with one entry.
    pub endpoint: Option<String>,
    /// `docker.engines`: several engines, each with its own name, endpoint and cap.
    pub engines: Option<Vec<RawEngine>>,
}

/// One entry of `docker.engines`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// `name`: unique, shown on every lease, event and stat of its containers.
    pub name: Option<String>,
    /// `endpoint`: `unix://`, `tcp://`, `http://`, `https://` or `ssh://`.
    pub endpoint: Option<String>,
    /// `tls`: client certificate files for a `tcp://` or `https://` engine.
    pub tls: Option<RawTls>,
    /// `max_containers`: this engine's own cap, under `limits.max_containers`.
    pub max_containers: Option<u32>,
    /// `labels`: free-form labels an acquire can ask for (`zone: a`).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// `tls:` of an engine: PEM files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// `ca`: the CA that signed the engine's certificate.
    pub ca: Option<String>,
    /// `cert`: this client's certificate.
    pub cert: Option<String>,
    /// `key`: this client's private key.
    pub key: Option<String>,
}

/// Top-level `limits:`: caps shared by all pools.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `limits.max_containers`: containers of all pools in any state (default 64, 1..100000).
    /// Must be ≥ the sum of the pools' `min_ready`.
    pub max_containers: Option<u32>,
    /// `limits.max_concurrent_creates`: create+starts at once over all pools (default 4, 1..256).
    pub max_concurrent_creates: Option<u32>,
    /// `limits.max_concurrent_removes`: removes at once (default 8, 1..256).
    pub max_concurrent_removes: Option<u32>,
    /// `limits.sweep_interval`: how often the engine is compared with the books (default 30s).
    /// Between 1s and 1h; containers nobody accounts for are removed.
    pub sweep_interval: Option<String>,
}

/// `pools.<name>`: one pool's container spec, sizes and policies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// `pools.<name>.image`: image to run (required, non-empty; pulled if missing).
    pub image: String,
    /// `pools.<name>.image_source`: how an engine that lacks the image gets it: `pull`
    /// (default; from another engine when the pull fails), `copy` (from another engine
    /// first, pulled when none has it) or `none` (never: creates there fail).
    pub image_source: Option<String>,
    /// `pools.<name>.exec`: `agent` (default: warmpool's agent in each container serves
    /// exec, streaming, terminals, files and the scrub) or `engine` (the engine's exec and
    /// archive endpoints).
    pub exec: Option<String>,
    /// `pools.<name>.min_ready`: containers kept ready (default 1, at most 10000).
    pub min_ready: Option<u32>,
    /// `pools.<name>.max_ready`: most containers kept ready (default `min_ready`, at least 1).
    /// Must be ≥ `min_ready` and ≤ `max_total`.
    pub max_ready: Option<u32>,
    /// `pools.<name>.max_total`: ready + leased + creating + removing (default `max_ready` + 10).
    pub max_total: Option<u32>,
    /// `pools.<name>.cmd`: the container's command (default `sleep infinity`).
    pub cmd: Option<Command>,
    /// `pools.<name>.env`: environment variables set in each container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `pools.<name>.workdir`: working directory in the container; the image's if unset.
    pub workdir: Option<String>,
    /// `pools.<name>.user`: user to run as, e.g. `"65534:65534"`; the image's if unset.
    pub user: Option<String>,
    /// `pools.<name>.labels`: extra Docker labels; `warmpool.*` keys are reserved.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `pools.<name>.memory`: memory limit, a size (default 512m, 6m..1t).
    pub memory: Option<Size>,
    /// `pools.<name>.cpus`: CPU limit in cores, > 0 and ≤ 1024; unlimited if unset.
    pub cpus: Option<f64>,
    /// `pools.<name>.pids_limit`: process limit (default 256; -1 for none).
    pub pids_limit: Option<i64>,
    /// `pools.<name>.runtime`: the OCI runtime the engine runs the containers with, by the
    /// name the engine registered it under (`runsc` for gVisor); default: the engine's own
    /// default. Only engines that have it get the pool's containers.
    pub runtime: Option<String>,
    /// `pools.<name>.network`: Docker network to attach to (default `none`).
    pub network: Option<String>,
    /// `pools.<name>.read_only`: read-only root filesystem (default false).
    pub read_only: Option<bool>,
    /// `pools.<name>.init`: run an init (tini) as PID 1 so signals work (default true).
    pub init: Option<bool>,
    /// `pools.<name>.cap_drop`: capabilities dropped (default `[ALL]`).
    pub cap_drop: Option<Vec<String>>,
    /// `pools.<name>.cap_add`: capabilities added back (default none).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `pools.<name>.no_new_privileges`: forbid privilege gain, e.g. via setuid (default true).
    pub no_new_privileges: Option<bool>,
    /// `pools.<name>.setup`: commands that must each exit 0 before a container counts as ready.
    #[serde(default)]
    pub setup: Vec<Command>,
    /// `pools.<name>.setup_timeout`: bound on each setup command (default 2m, 1s..1h).
    pub setup_timeout: Option<String>,
    /// `pools.<name>.lease`: lease TTLs.
    #[serde(default)]
    pub lease: RawLease,
    /// `pools.<name>.lifecycle`: when containers are replaced, retired or trusted.
    #[serde(default)]
    pub lifecycle: RawLifecycle,
    /// `pools.<name>.exhaustion`: what an acquire does when no container is ready.
    #[serde(default)]
    pub exhaustion: RawExhaustion,
    /// `pools.<name>.health`: health probe of ready containers; none if unset.
    pub health: Option<RawHealth>,
    /// `pools.<name>.sizing`: built-in policy setting the ready target.
    #[serde(default)]
    pub sizing: RawSizing,
    /// `pools.<name>.plugins`: optional wasm plugins for this pool's decisions.
    #[serde(default)]
    pub plugins: RawPoolPlugins,
    /// `pools.<name>.reuse`: opt-in reuse of released containers (default: single-use).
    #[serde(default)]
    pub reuse: RawReuse,
    /// `pools.<name>.resources`: the most CPU and memory a lease may ask for (at acquire, or
    /// by `PATCH /v1/leases/{id}`); unset: a lease gets the pool's and may ask for nothing.
    pub resources: Option<RawResources>,
}

/// `pools.<name>.resources`: bounds on what a lease may ask for. At least one is required.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// `pools.<name>.resources.max_cpus`: most CPUs a lease may ask for (0.01..1024, at least
    /// the pool's `cpus`, which must be set: a reuse puts it back). Unset: no cpus ask.
    pub max_cpus: Option<f64>,
    /// `pools.<name>.resources.max_memory`: most memory a lease may ask for, a size like the
    /// pool's `memory` (6m..1t, at least the pool's `memory`). Unset: no memory ask.
    pub max_memory: Option<Size>,
}

/// `pools.<name>.plugins`: wasm components serving this pool's decisions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolPlugins {
    /// `pools.<name>.plugins.sizing`: sets the ready target; built-in `sizing` is the fallback.
    pub sizing: Option<RawPluginRef>,
    /// `pools.<name>.plugins.exhaustion`: answers an acquire when nothing is ready.
    pub exhaustion: Option<RawPluginRef>,
    /// `pools.<name>.plugins.health`: plans a container's probes and judges their results.
    pub health: Option<RawPluginRef>,
}

/// `pools.<name>.plugins.<decision>`: one plugin, by file and settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRef {
    /// The `.wasm` file; relative paths are relative to the config file.
    pub path: String,
    /// The plugin's own settings, handed to its `init`.
    #[serde(default)]
    pub config: serde_yaml::Mapping,
}

/// Top-level `plugins:`: limits and cache for every plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginSettings {
    /// `plugins.cache_dir`: compiled-component cache.
    /// Default: `warmpool-plugin-cache-<host_id>` in the temp dir.
    pub cache_dir: Option<String>,
    /// `plugins.deadline`: wall-clock bound per plugin call (default 50ms, 10ms..10s).
    pub deadline: Option<String>,
    /// `plugins.load_deadline`: bound on instantiating and `init`ing a new version.
    /// Default 2s, 10ms..1m.
    pub load_deadline: Option<String>,
    /// `plugins.max_memory`: memory cap per plugin instance (default 64m, 1m..4g).
    pub max_memory: Option<Size>,
    /// `plugins.bench_after`: failures in a row that bench a plugin (default 5, 1..1000).
    pub bench_after: Option<u32>,
}

/// `pools.<name>.lease`: how long leases last.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    /// `lease.default_ttl`: TTL of an acquire that names none (default 10m, 1s..30d).
    /// Must be ≤ `max_ttl`.
    pub default_ttl: Option<String>,
    /// `lease.max_ttl`: cap on any requested TTL (default the larger of 1h and `default_ttl`).
    /// At most 365d.
    pub max_ttl: Option<String>,
    /// `lease.on_suspended`: what an exec, file or terminal call on a suspended lease does
    /// (default `resume`).
    pub on_suspended: Option<OnSuspendedRaw>,
    /// `lease.suspend_after_idle`: suspend a lease nobody called for this long (1s..30d);
    /// unset: only on request.
    pub suspend_after_idle: Option<String>,
}

/// `lease.on_suspended`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnSuspendedRaw {
    /// `resume`: resume the lease first, then serve the call (the default).
    Resume,
    /// `refuse`: answer 409 `lease_suspended`; only `POST …/resume` wakes it.
    Refuse,
}

/// `pools.<name>.lifecycle`: container ages and timings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLifecycle {
    /// `lifecycle.max_warm_age`: ready containers older than this are replaced (off if unset).
    pub max_warm_age: Option<String>,
    /// `lifecycle.idle_timeout`: with no acquire for this long, the pool shrinks toward
    /// `min_ready` (default 10m, 1s..30d).
    pub idle_timeout: Option<String>,
    /// `lifecycle.max_lifetime`: age since first ready past which a container is never reused
    /// and, when ready, replaced (off if unset).
    pub max_lifetime: Option<String>,
    /// `lifecycle.image_check_interval`: how often the image tag is resolved again, to drain
    /// containers of an old image (default 30s, 100ms..1d).
    pub image_check_interval: Option<String>,
    /// `lifecycle.probation`: a fresh container dying this young counts as a failed create
    /// (default 10s, at most 10m).
    pub probation: Option<String>,
    /// `lifecycle.start_settle`: how long a new container must run before it may serve
    /// (default 100ms, at most 10s).
    pub start_settle: Option<String>,
}

/// `pools.<name>.reuse`: opt-in reuse with a verified reset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReuse {
    /// `reuse.enabled`: turn reuse on (default false: every container is single-use).
    #[serde(default)]
    pub enabled: bool,
    /// `reuse.max_uses`: leases one container may serve in all (default 10, 2..1000000).
    pub max_uses: Option<u32>,
    /// `reuse.reset`: commands that clean a released container; each must exit 0.
    /// At least one is required when reuse is on.
    #[serde(default)]
    pub reset: Vec<Command>,
    /// `reuse.verify`: commands that prove the reset; each must exit 0, or the container is
    /// destroyed. At least one is required when reuse is on.
    #[serde(default)]
    pub verify: Vec<Command>,
    /// `reuse.timeout`: bound on each reset or verify command (default 30s, 1s..1h).
    pub timeout: Option<String>,
    /// Paths under which a reused container may differ from its fresh self.
    #[serde(default)]
    pub allowed_changes: Vec<String>,
}

/// `pools.<name>.exhaustion`: the built-in answer when no container is ready.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExhaustion {
    /// `exhaustion.strategy`: `wait`, `fail` or `cold` (default `cold`).
    pub strategy: Option<Strategy>,
    /// `exhaustion.wait_timeout`: longest an acquire waits for a container (default 30s, ≤ 1h).
    pub wait_timeout: Option<String>,
}

/// `exhaustion.strategy`: what an acquire does when no container is ready.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `wait`: queue for the next ready container, up to `wait_timeout`.
    Wait,
    /// `fail`: refuse at once, with a retry hint.
    Fail,
    /// `cold`: create a container for the request now (the default).
    Cold,
}

/// `pools.<name>.health`: a health probe; give exactly one of `cmd` and `http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `health.interval`: time between probes (default 30s, 100ms..1d).
    pub interval: Option<String>,
    /// `health.cmd`: run this command in the container; healthy when it exits 0.
    pub cmd: Option<Command>,
    /// `health.http`: GET a path on a container port; healthy on a 2xx or 3xx answer.
    pub http: Option<RawHttpProbe>,
    /// `health.timeout`: bound on one probe (default 5s, 10ms..10m).
    pub timeout: Option<String>,
}

/// `health.http`: an HTTP probe of the container.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProbe {
    /// `health.http.port`: container port to probe (required).
    pub port: u16,
    /// `health.http.path`: path to GET (default `/`).
    #[serde(default = "slash")]
    pub path: String,
}

fn slash() -> String {
    "/".into()
}

/// `pools.<name>.sizing`: the built-in sizing policy and its timings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSizing {
    /// `sizing.policy`: `fixed` or `adaptive` (default `adaptive`).
    pub policy: Option<SizingKind>,
    /// `sizing.burst_window`: adaptive: the target rises by the acquires of this window
    /// (default 10s, 1s..1h).
    pub burst_window: Option<String>,
    /// `sizing.cooldown`: adaptive: the target is held this long after each acquire
    /// (default 30s, at most 1d).
    pub cooldown: Option<String>,
}

/// `sizing.policy`: which built-in policy sets the ready target.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizingKind {
    /// `fixed`: keep `min_ready` ready.
    Fixed,
    /// `adaptive`: follow recent acquires, then decay back to `min_ready` (the default).
    Adaptive,
}

/// A command: a string runs through `sh -c`, a list is an argv. List items may be any YAML
/// scalar, so `[true]` or `[sleep, 5]` mean what they look like rather than failing on type.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a command: a string (run by sh -c) or a list of arguments"
)]
pub enum Command {
    /// A string, run as `sh -c <string>`.
    Shell(String),
    /// A list, run as an argv without a shell.
    Argv(Vec<Arg>),
}

/// One argv item, read from any YAML scalar.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string, number or boolean")]
pub enum Arg {
    /// A string, used as is.
    Str(String),
    /// A boolean, as `true` or `false`.
    Bool(bool),
    /// An integer, in decimal.
    Int(i64),
    /// A float, as Rust's `Display` writes it (`5.0` becomes `5`).
    Float(f64),
}

impl Arg {
    fn text(&self) -> String {
        match self {
            Arg::Str(s) => s.clone(),
            Arg::Bool(b) => b.to_string(),
            Arg::Int(i) => i.to_string(),
            Arg::Float(f) => f.to_string(),
        }
    }
}

impl Command {
    /// The argv to run: `["sh", "-c", s]` for a string, each item as text for a list.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Command::Argv(v) => v.iter().map(Arg::text).collect(),
        }
    }
}

/// A byte size: a number of bytes or a string such as `256m`, `1g`, `512KiB`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// A plain number of bytes.
    Bytes(u64),
    /// A number with a unit, e.g. `512m` or `1GiB`, read by [`crate::parse_size`].
    Text(String),
}
