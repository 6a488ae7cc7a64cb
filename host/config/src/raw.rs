//! Layer one: the YAML as written. Every struct denies unknown keys; every field is optional
//! where a default exists, so that [`crate::validate`] can report a missing value by its path.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub auth_token_env: Option<String>,
    pub host_id: Option<String>,
    pub max_request_bytes: Option<Size>,
    pub max_upload_bytes: Option<Size>,
    pub exec_output_bytes: Option<Size>,
    pub shutdown_grace: Option<String>,
    pub audit_log: Option<String>,
    pub state_dir: Option<String>,
    pub commit_interval: Option<String>,
    pub keep_on_shutdown: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_containers: Option<u32>,
    pub max_concurrent_creates: Option<u32>,
    pub max_concurrent_removes: Option<u32>,
    pub sweep_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub image: String,
    pub min_ready: Option<u32>,
    pub max_ready: Option<u32>,
    pub max_total: Option<u32>,
    pub cmd: Option<Command>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub memory: Option<Size>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub network: Option<String>,
    pub read_only: Option<bool>,
    pub init: Option<bool>,
    pub cap_drop: Option<Vec<String>>,
    #[serde(default)]
    pub cap_add: Vec<String>,
    pub no_new_privileges: Option<bool>,
    #[serde(default)]
    pub setup: Vec<Command>,
    pub setup_timeout: Option<String>,
    #[serde(default)]
    pub lease: RawLease,
    #[serde(default)]
    pub lifecycle: RawLifecycle,
    #[serde(default)]
    pub exhaustion: RawExhaustion,
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub sizing: RawSizing,
    #[serde(default)]
    pub plugins: RawPoolPlugins,
    #[serde(default)]
    pub reuse: RawReuse,
}

/// `pools.<name>.plugins`: wasm components serving this pool's decisions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolPlugins {
    pub sizing: Option<RawPluginRef>,
    pub exhaustion: Option<RawPluginRef>,
    pub health: Option<RawPluginRef>,
}

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
    pub cache_dir: Option<String>,
    pub deadline: Option<String>,
    pub load_deadline: Option<String>,
    pub max_memory: Option<Size>,
    pub bench_after: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLifecycle {
    pub max_warm_age: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_lifetime: Option<String>,
    pub image_check_interval: Option<String>,
    pub probation: Option<String>,
    pub start_settle: Option<String>,
}

/// `pools.<name>.reuse`: opt-in reuse with a verified reset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReuse {
    #[serde(default)]
    pub enabled: bool,
    pub max_uses: Option<u32>,
    #[serde(default)]
    pub reset: Vec<Command>,
    #[serde(default)]
    pub verify: Vec<Command>,
    pub timeout: Option<String>,
    /// Paths under which a reused container may differ from its fresh self.
    #[serde(default)]
    pub allowed_changes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExhaustion {
    pub strategy: Option<Strategy>,
    pub wait_timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Wait,
    Fail,
    Cold,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub interval: Option<String>,
    pub cmd: Option<Command>,
    pub http: Option<RawHttpProbe>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProbe {
    pub port: u16,
    #[serde(default = "slash")]
    pub path: String,
}

fn slash() -> String {
    "/".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSizing {
    pub policy: Option<SizingKind>,
    pub burst_window: Option<String>,
    pub cooldown: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizingKind {
    Fixed,
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
    Shell(String),
    Argv(Vec<Arg>),
}

/// One argv item, read from any YAML scalar.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string, number or boolean")]
pub enum Arg {
    Str(String),
    Bool(bool),
    Int(i64),
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
    Bytes(u64),
    Text(String),
}
