//! Domain settings the pool core runs on. `warmpool-config` builds these from YAML after
//! validation, so every value here is already known to be consistent.

use std::time::Duration;

use crate::backend::{ContainerSpec, ResourceBounds};

/// One pool: what to run and how to keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The pool's name: its key in the API and its `warmpool.pool` label, and part of every
    /// container name.
    pub name: String,
    /// What each container of the pool runs.
    pub spec: ContainerSpec,
    /// Ready containers kept at least: the `fixed` policy's target, the `adaptive` floor.
    pub min_ready: u32,
    /// Ready containers kept at most: every sizing target is capped here. ≤ `max_total`.
    pub max_ready: u32,
    /// Every container of the pool in any state (ready, leased, creating, removing).
    pub max_total: u32,
    /// Lease lifetime when the acquire asks for none. ≤ `max_ttl`.
    pub default_ttl: Duration,
    /// Longest lease lifetime; longer asks of an acquire or a renew are cut to it.
    pub max_ttl: Duration,
    /// Ready containers older than this are replaced. `None`: never.
    pub max_warm_age: Option<Duration>,
    /// With no acquire for this long, the pool shrinks toward `min_ready`.
    pub idle_timeout: Duration,
    /// Longest an acquire waits for a container when the pool is dry.
    pub wait_timeout: Duration,
    /// How often ready containers are probed, when the pool has a health check.
    pub health_interval: Duration,
    /// Containers older than this (since first ready) are never reused and, when ready, are
    /// replaced. `None`: no limit.
    pub max_lifetime: Option<Duration>,
    /// How often the image reference is resolved again, to drain containers of an old image.
    pub image_check_interval: Duration,
    /// Opt-in reuse with a verified reset; `None`: single-use (the default).
    pub reuse: Option<ReuseConfig>,
    /// A fresh ready container that dies within this time counts as a failed create: it feeds
    /// the breaker, so a pool whose containers cannot stay up backs off instead of storming.
    pub probation: Duration,
    /// How long a new container must have been running before it may serve (checked once): a
    /// command that exits right after it starts is caught, and never handed out, cold included.
    pub start_settle: Duration,
    /// The most CPU and memory a lease may ask for (at acquire, or by a `PATCH` of the lease);
    /// `None`: a lease gets the spec's and may ask for nothing else.
    pub resources: Option<ResourceBounds>,
    /// Lease hibernation: what a call on a suspended lease does, and when an idle lease is
    /// suspended on its own.
    pub hibernation: HibernationConfig,
}

/// What a call (exec, file, terminal) on a suspended lease does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSuspended {
    /// Resume the lease first, then serve the call (the default).
    #[default]
    Resume,
    /// Answer that the lease is suspended (the API's 409); only `resume` wakes it.
    Refuse,
}

/// A pool's lease hibernation settings (`pools.<name>.lease.{on_suspended,suspend_after_idle}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HibernationConfig {
    /// What a call on a suspended lease does.
    pub on_suspended: OnSuspended,
    /// Suspend a lease nobody called for this long. `None`: only on request.
    pub suspend_after_idle: Option<Duration>,
}

/// Reuse of a released container, only after a reset that a verification confirms.
#[derive(Debug, Clone, PartialEq)]
pub struct ReuseConfig {
    /// Leases one container may serve in all.
    pub max_uses: u32,
    /// Commands that clean the container; each must exit 0.
    pub reset: Vec<Vec<String>>,
    /// Commands that prove the reset worked; each must exit 0.
    pub verify: Vec<Vec<String>>,
    /// Bound on each reset or verify command.
    pub timeout: Duration,
    /// Paths under which a reused container may differ from its fresh self (a cache kept on
    /// purpose). Anything else a client left behind destroys the container instead.
    pub allowed_changes: Vec<String>,
}

/// Settings shared by all pools.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerConfig {
    /// Every container of every pool, in any state.
    pub max_containers: u32,
    /// Creates running at once over all pools. The engine measured here saturates near 4.
    pub max_concurrent_creates: usize,
    /// Removes running at once.
    pub max_concurrent_removes: usize,
    /// Period of the refill, reaper and engine-monitor loops.
    pub tick: Duration,
    /// Back-off and breaker for failing creates, the same for every pool.
    pub breaker: BreakerConfig,
    /// Bytes kept of each of an exec's stdout and stderr.
    pub exec_output_limit: usize,
    /// Period of the group commit of leases, when a state store is configured. A lease older
    /// than this survives a crash.
    pub commit_interval: Duration,
    /// At shutdown, with a state store: leave leased and never-lent ready containers running
    /// for the next start to re-attach and re-adopt, instead of removing everything.
    pub keep_on_shutdown: bool,
    /// Period of the running sweep, which removes containers of this host id on the engine that
    /// the daemon does not account for, and notices dead ones whose death event was lost.
    pub sweep_interval: Duration,
    /// Longest pause between two attempts to remove one container; removal never gives up.
    pub remove_backoff_max: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            max_containers: 64,
            max_concurrent_creates: 4,
            max_concurrent_removes: 8,
            tick: Duration::from_secs(1),
            breaker: BreakerConfig::default(),
            exec_output_limit: 1 << 20,
            commit_interval: Duration::from_millis(20),
            keep_on_shutdown: false,
            sweep_interval: Duration::from_secs(30),
            remove_backoff_max: Duration::from_secs(30),
        }
    }
}

/// Back-off and circuit breaker for failing creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (pool reported `degraded`).
    pub threshold: u32,
    /// Delay after the first failure; doubles with each further one.
    pub base_backoff: Duration,
    /// Ceiling on the doubling back-off.
    pub max_backoff: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// Back-off after `failures` consecutive failures (≥ 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.base_backoff
            .saturating_mul(1 << exp)
            .min(self.max_backoff)
    }
}

/// A pool's sizes set at run time (`PUT /v1/pools/{name}/scale`), in place of the config's
/// `min_ready` and `max_ready` until cleared (`DELETE`, or a reload that changes the pool's
/// sizes). The sizing policy sees them as its floor and ceiling, and the core holds the target
/// between them whatever the policy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScaleOverride {
    /// Ready containers kept at least.
    pub min_ready: u32,
    /// Ready containers kept at most.
    pub max_ready: u32,
}

impl ScaleOverride {
    /// The override a request asks for on pool `cfg`: a size not given is the config's. It
    /// must keep `min_ready ≤ max_ready`, `1 ≤ max_ready ≤ max_total`, and, with the other
    /// pools' `min_ready` (`others_min`), fit in the `capacity` the caps allow, as the config's
    /// own sizes must. The error names the bound the request broke.
    pub fn resolve(
        min_ready: Option<u64>,
        max_ready: Option<u64>,
        cfg: &PoolConfig,
        others_min: u32,
        capacity: u32,
    ) -> Result<Self, crate::error::ScaleError> {
        let out = |bound: &'static str, message: String| {
            Err(crate::error::ScaleError::OutOfBounds { bound, message })
        };
        // In u64, as asked (a client may ask past u32): every bound below is a u32.
        let (min, max) = (
            min_ready.unwrap_or(cfg.min_ready.into()),
            max_ready.unwrap_or(cfg.max_ready.into()),
        );
        if max == 0 {
            return out(
                "max_ready",
                "max_ready must be at least 1 (min_ready 0 keeps none warm)".into(),
            );
        }
        if max > u64::from(cfg.max_total) {
            return out(
                "max_total",
                format!("max_ready {max} > the pool's max_total {}", cfg.max_total),
            );
        }
        if min > max {
            return match (min_ready, max_ready) {
                (None, Some(_)) => out(
                    "min_ready",
                    format!("max_ready {max} < the pool's min_ready {min} (give min_ready too)"),
                ),
                (Some(_), None) => out(
                    "max_ready",
                    format!("min_ready {min} > the pool's max_ready {max} (give max_ready too)"),
                ),
                _ => out("max_ready", format!("min_ready {min} > max_ready {max}")),
            };
        }
        if u64::from(others_min) + min > u64::from(capacity) {
            return out(
                "limits.max_containers",
                format!(
                    "min_ready {min} and the other pools' min_ready ({others_min}) exceed the \
                     {capacity} containers the daemon may hold (limits.max_containers, or the \
                     engines' max_containers added up)"
                ),
            );
        }
        // Both are at most max_total now.
        Ok(Self {
            min_ready: min as u32,
            max_ready: max as u32,
        })
    }
}

impl PoolConfig {
    /// `min_ready`, `max_ready` and `max_total`: what an override was set against. A reload
    /// or a restart that finds other sizes drops the override.
    pub fn sizes(&self) -> [u32; 3] {
        [self.min_ready, self.max_ready, self.max_total]
    }
}
