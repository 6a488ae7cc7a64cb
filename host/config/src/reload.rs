//! What a reload does with a new config: the [`ReloadPlan`], the one place that decides it. The
//! daemon's supervisor applies the plan as it stands; nothing downstream compares configs again.
//!
//! Every setting has one reload class:
//!
//! - **restart**: read once at start (the listener and the API's guards, the store, the engines,
//!   the plugin host, the manager's limits). A change is reported by its YAML path and the
//!   running value stays.
//! - **pool, live**: a pool's sizes, lease TTLs, timings and reuse apply at once; changed sizes
//!   also clear the pool's scale override (`resize`).
//! - **pool, policies**: a pool's `sizing`, `exhaustion`, `health` and `plugins` settings are what
//!   its policies are built from; a change builds them again.
//! - **pool, spec**: the container a pool runs; a change starts a new generation, and containers
//!   of the old spec drain.
//!
//! No global setting applies live today.
//!
//! Each struct is taken apart by exhaustive destructuring, never with `..`: `Config`,
//! `ServerConfig`, `ManagerConfig`, `DockerConfig`, `EngineConfig`, `PluginSettings`, `PoolPlan`
//! and `PoolConfig`. A field added to any of them without a reload class here does not compile,
//! so no setting is silently neither applied nor reported. (A struct whose fields all share one
//! class, such as the container spec or a pool's plugins, is compared whole.)

use warmpool_core::{ManagerConfig, PoolConfig};

use crate::{Config, DockerConfig, EngineConfig, PluginSettings, PoolPlan, ServerConfig};

/// What a reload of `new` over the running `old` config does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// One entry per pool of the new config, in its order: `pools[i]` is for `new.pools[i]`.
    pub pools: Vec<PoolReload>,
    /// Pools of the running config that the new one lacks, in the running config's order: they
    /// drain.
    pub removed: Vec<String>,
    /// YAML paths of the settings that changed but apply only at a restart (the running values
    /// stay), each once, in the order of the file's sections.
    pub restart: Vec<&'static str>,
}

/// What a reload does with one pool of the new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReload {
    /// A new pool: it starts, with its own policies.
    Added,
    /// Same settings and policies: left as it is.
    Unchanged,
    /// Changed in place, at once.
    Changed {
        /// Its `sizing`, `exhaustion`, `health` or `plugins` settings changed: its policies are
        /// built again.
        policies: bool,
        /// Its container spec changed: containers of the old spec drain.
        respec: bool,
        /// Its `min_ready`, `max_ready` or `max_total` changed: a scale override set at run
        /// time is cleared (the file is the operator's newer word).
        resize: bool,
    },
}

impl PoolReload {
    /// Whether the pool needs policies built for it (new, or its policy settings changed).
    pub fn builds_policies(self) -> bool {
        matches!(
            self,
            PoolReload::Added | PoolReload::Changed { policies: true, .. }
        )
    }
}

impl ReloadPlan {
    /// The plan for replacing the running config `old` by `new`.
    pub fn new(old: &Config, new: &Config) -> Self {
        let Config {
            server,
            docker,
            manager,
            pools,
            plugins,
        } = old;
        let mut restart = Restart::default();
        server_class(server, &new.server, &mut restart);
        manager_class(manager, &new.manager, &mut restart);
        restart.when(docker_differs(docker, &new.docker), "docker");
        restart.when(plugins_differ(plugins, &new.plugins), "plugins");
        let by_name = |name: &str| pools.iter().find(|p| p.pool.name == name);
        ReloadPlan {
            pools: new
                .pools
                .iter()
                .map(|p| by_name(&p.pool.name).map_or(PoolReload::Added, |o| pool_class(o, p)))
                .collect(),
            removed: pools
                .iter()
                .filter(|o| !new.pools.iter().any(|p| p.pool.name == o.pool.name))
                .map(|o| o.pool.name.clone())
                .collect(),
            restart: restart.0,
        }
    }
}

/// The restart paths found so far, each once.
#[derive(Default)]
struct Restart(Vec<&'static str>);

impl Restart {
    fn when(&mut self, differs: bool, path: &'static str) {
        if differs && !self.0.contains(&path) {
            self.0.push(path);
        }
    }
}

/// `server:`: every setting is restart. The listener is bound, the API's Host guard and body
/// bounds are built, the store and the audit log are opened once at start; the shutdown reads
/// the grace it started with.
fn server_class(a: &ServerConfig, b: &ServerConfig, r: &mut Restart) {
    let ServerConfig {
        listen,
        auth_token_env,
        allowed_hosts,
        allow_any_host,
        host_id,
        max_request_bytes,
        max_upload_bytes,
        shutdown_grace,
        audit_log,
        state_dir,
        commit_interval,
        keep_on_shutdown,
        tenants,
    } = a;
    r.when(*listen != b.listen, "server.listen");
    r.when(*host_id != b.host_id, "server.host_id");
    r.when(*state_dir != b.state_dir, "server.state_dir");
    r.when(
        *commit_interval != b.commit_interval,
        "server.commit_interval",
    );
    r.when(
        *keep_on_shutdown != b.keep_on_shutdown,
        "server.keep_on_shutdown",
    );
    r.when(*auth_token_env != b.auth_token_env, "server.auth_token_env");
    // The tokens are read and hashed once, at start.
    r.when(*tenants != b.tenants, "server.tenants");
    // `"*"` is an entry of the same list.
    r.when(
        *allowed_hosts != b.allowed_hosts || *allow_any_host != b.allow_any_host,
        "server.allowed_hosts",
    );
    r.when(
        *max_request_bytes != b.max_request_bytes || *max_upload_bytes != b.max_upload_bytes,
        "server.max_request_bytes/max_upload_bytes",
    );
    r.when(*audit_log != b.audit_log, "server.audit_log");
    r.when(*shutdown_grace != b.shutdown_grace, "server.shutdown_grace");
}

/// The manager's settings: every one is restart (the manager is built once, and its caps,
/// semaphores and loops with it).
fn manager_class(a: &ManagerConfig, b: &ManagerConfig, r: &mut Restart) {
    let ManagerConfig {
        max_containers,
        max_concurrent_creates,
        max_concurrent_removes,
        tick,
        breaker,
        exec_output_limit,
        commit_interval,
        keep_on_shutdown,
        sweep_interval,
        remove_backoff_max,
    } = a;
    r.when(
        *exec_output_limit != b.exec_output_limit,
        "server.exec_output_bytes",
    );
    r.when(
        *max_containers != b.max_containers
            || *max_concurrent_creates != b.max_concurrent_creates
            || *max_concurrent_removes != b.max_concurrent_removes
            || *sweep_interval != b.sweep_interval,
        "limits",
    );
    // Not in the file: every config holds the defaults, so these never differ today. Were they
    // made settable, they would be `limits` settings, and restart ones.
    r.when(
        *tick != b.tick || *breaker != b.breaker || *remove_backoff_max != b.remove_backoff_max,
        "limits",
    );
    // Copies of `server.commit_interval` and `server.keep_on_shutdown`, found there already.
    r.when(
        *commit_interval != b.commit_interval,
        "server.commit_interval",
    );
    r.when(
        *keep_on_shutdown != b.keep_on_shutdown,
        "server.keep_on_shutdown",
    );
}

/// `docker:`: restart. The engines are connected to, and their masks laid out, at start.
fn docker_differs(a: &DockerConfig, b: &DockerConfig) -> bool {
    let DockerConfig { engines } = a;
    engines.len() != b.engines.len()
        || engines
            .iter()
            .zip(&b.engines)
            .any(|(a, b)| engine_differs(a, b))
}

fn engine_differs(a: &EngineConfig, b: &EngineConfig) -> bool {
    let EngineConfig {
        name,
        endpoint,
        tls,
        max_containers,
        labels,
    } = a;
    *name != b.name
        || *endpoint != b.endpoint
        || *tls != b.tls
        || *max_containers != b.max_containers
        || *labels != b.labels
}

/// `plugins:`: restart. The plugin host and its compile cache are made once, at start.
fn plugins_differ(a: &PluginSettings, b: &PluginSettings) -> bool {
    let PluginSettings {
        cache_dir,
        deadline,
        load_deadline,
        max_memory,
        bench_after,
    } = a;
    *cache_dir != b.cache_dir
        || *deadline != b.deadline
        || *load_deadline != b.load_deadline
        || *max_memory != b.max_memory
        || *bench_after != b.bench_after
}

/// One pool present in both configs (`a` running, `b` new, of the same name).
fn pool_class(a: &PoolPlan, b: &PoolPlan) -> PoolReload {
    let PoolPlan {
        pool,
        sizing,
        exhaustion,
        health,
        plugins,
    } = a;
    // What the pool's policies are built from.
    let policies = *sizing != b.sizing
        || *exhaustion != b.exhaustion
        || *health != b.health
        || *plugins != b.plugins;
    let PoolConfig {
        // The key the two pools were matched by.
        name: _,
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
        probation,
        start_settle,
        resources,
        hibernation,
    } = pool;
    let c = &b.pool;
    let respec = *spec != c.spec;
    let resize =
        *min_ready != c.min_ready || *max_ready != c.max_ready || *max_total != c.max_total;
    // Read by the pool's loops and operations from its current settings, which the reload swaps.
    let live = resize
        || *default_ttl != c.default_ttl
        || *max_ttl != c.max_ttl
        || *max_warm_age != c.max_warm_age
        || *idle_timeout != c.idle_timeout
        || *wait_timeout != c.wait_timeout
        || *health_interval != c.health_interval
        || *max_lifetime != c.max_lifetime
        || *image_check_interval != c.image_check_interval
        || *reuse != c.reuse
        || *probation != c.probation
        || *start_settle != c.start_settle
        || *resources != c.resources
        || *hibernation != c.hibernation;
    if policies || respec || live {
        PoolReload::Changed {
            policies,
            respec,
            resize,
        }
    } else {
        PoolReload::Unchanged
    }
}

#[cfg(test)]
mod tests;
