//! The stats view the API serves: a read-only copy of one pool's state, read under its lock
//! once. The counters it copies live in `counters.rs`; the manager's `pool_stats` picks the
//! pool.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{BreakerConfig, ScaleOverride};
use crate::counters::{Counters, StateCounts};
use crate::pool::Pool;

/// A pool as `GET /v1/pools/{name}` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// The image reference the pool runs.
    pub image: String,
    /// `ok`, `degraded` (create breaker open, or no engine that is up has the pool's
    /// runtime), `engine_down` or `draining`.
    pub status: &'static str,
    /// Why the pool is `degraded`: the runtime no engine has, or the last create failure;
    /// `null` otherwise.
    pub reason: Option<String>,
    /// The OCI runtime the pool's containers run under (`runsc`); `null`: each engine's
    /// default.
    pub runtime: Option<String>,
    /// Ready containers the refill aims for: the sizing policy's target, raised to the number
    /// of queued acquires and capped at `max_ready` (the override's while one holds).
    pub target: u32,
    /// The sizing policy's reason for its last target.
    pub target_reason: String,
    /// Ready containers kept at least, as configured.
    pub min_ready: u32,
    /// Ready containers kept at most, as configured.
    pub max_ready: u32,
    /// Containers of the pool in any state at most, as configured.
    pub max_total: u32,
    /// The scale override (`PUT /v1/pools/{name}/scale`): the `min_ready` and `max_ready` the
    /// pool runs on instead of the configured ones above; `null` when none holds.
    #[serde(rename = "override")]
    pub scale_override: Option<ScaleOverride>,
    /// Containers of the pool per state now.
    pub counts: StateCounts,
    /// The same, per engine (by name; every engine is listed).
    pub engines: BTreeMap<String, StateCounts>,
    /// Acquires queued for a container now.
    pub waiters: u32,
    /// Of `counts.ready`, those a commit made lendable (all of them when nothing is persisted).
    pub lendable: u32,
    /// Of `counts.creating`, the creates made for one specific acquire (exhaustion `cold`).
    pub creating_cold: u32,
    /// Acquire counts, hit rate and latency.
    pub acquires: AcquireStats,
    /// Create counts, timing and failures.
    pub creates: CreateStats,
    /// Names of the pool's policies.
    pub policies: PolicyNames,
    /// Every monotonic counter of the pool.
    pub counters: Counters,
    /// Idle container-seconds since the pool started: the integral over time of its ready
    /// (warm, unleased) containers, exact to the microsecond. What keeping it warm cost.
    pub idle_container_seconds: f64,
    /// The most containers the pool counted at once since it started, in any state.
    pub peak_containers: u32,
    /// How long its leases' suspends and resumes took (`counts.suspended` says how many are
    /// suspended now).
    pub hibernation: crate::counters::HibernationTimes,
}

/// Acquires of one pool, as [`PoolStats`] shows them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcquireStats {
    /// Acquires served, warm or cold.
    pub total: u64,
    /// Acquires served by the pool's own containers (not a cold create).
    pub pool: u64,
    /// Acquires served by a container created for them.
    pub cold: u64,
    /// Acquires refused (exhausted, degraded, or a failed cold create).
    pub rejected: u64,
    /// Share of acquires served warm from the pool; `null` before the first acquire.
    pub hit_rate: Option<f64>,
    /// Median acquire latency inside the daemon over the last 1024 acquires, in ms; `null`
    /// before the first.
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile of the same window, in ms; `null` before the first acquire.
    pub latency_ms_p99: Option<f64>,
}

/// Creates of one pool, as [`PoolStats`] shows them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateStats {
    /// Creates that ended with a running container.
    pub total: u64,
    /// Failed creates, and ready containers that died within probation.
    pub failures: u64,
    /// Failures in a row on the engine where creates fail most (see `breakers`); a breaker
    /// opens at its threshold.
    pub consecutive_failures: u32,
    /// Median duration of the last 32 successful creates, in ms; `null` before the first.
    pub median_ms: Option<u32>,
    /// 99th percentile (nearest rank) of the same creates, in ms; `null` before the first.
    /// `warmpool-lab simulate --create-from` draws simulated creates from these two.
    pub p99_ms: Option<u32>,
    /// The last create failure (or death within probation), kept after creates recover.
    pub last_error: Option<String>,
    /// Milliseconds until the earliest engine's create back-off ends.
    pub backoff_ms: Option<u64>,
    /// The pool's create breaker on each engine where a create failed since creates last
    /// worked there, by engine name. The pool is `degraded` once the breaker of every engine
    /// that is up is open. (`backoff_ms` above also counts back-offs after an outage, which
    /// are not failures and are not listed here.)
    pub breakers: BTreeMap<String, BreakerStats>,
}

/// One engine's create breaker for one pool.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerStats {
    /// Failures in a row on this engine.
    pub consecutive_failures: u32,
    /// Open: this engine gets one trial create at a time.
    pub open: bool,
    /// Milliseconds until this engine's back-off ends.
    pub backoff_ms: Option<u64>,
}

/// Names of a pool's policies, as each policy's `name()` reports it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyNames {
    /// The sizing policy, e.g. `builtin:adaptive`.
    pub sizing: String,
    /// The exhaustion strategy, e.g. `builtin:cold`.
    pub exhaustion: String,
    /// The health check; `null` when the pool has none.
    pub health: Option<String>,
}

impl PoolStats {
    /// Read `pool`'s stats, under its lock once. `engine_up` is the monitor's last view of the
    /// engine; `breaker` tells whether the pool counts as degraded.
    /// `engines` are the engines' names, in index order.
    /// `runtime_missing`: why no engine that is up has the pool's runtime, when none has.
    pub(crate) fn read(
        pool: &Pool,
        engine_up: bool,
        runtime_missing: Option<String>,
        breaker: &BreakerConfig,
        engines: &[&str],
    ) -> Self {
        let cfg = pool.cfg();
        let mut st = pool.lock();
        let now = Instant::now();
        let (status, reason) = if st.draining() {
            ("draining", None)
        } else if !engine_up {
            ("engine_down", None)
        } else if let Some(why) = runtime_missing {
            ("degraded", Some(why))
        } else if st.degraded(breaker) {
            ("degraded", st.last_error().map(str::to_string))
        } else {
            ("ok", None)
        };
        let [p50, p99] = st
            .latency()
            .quantiles_ms([0.5, 0.99])
            .map_or([None, None], |q| q.map(Some));
        let c = st.counters();
        let target = st.effective_target(&cfg);
        let mut creates: Vec<u32> = st.recent_creates_ms().collect();
        creates.sort_unstable();
        PoolStats {
            name: cfg.name.clone(),
            image: cfg.spec.image.clone(),
            status,
            reason,
            runtime: cfg.spec.runtime.clone(),
            target,
            target_reason: st.target().1.to_string(),
            min_ready: cfg.min_ready,
            max_ready: cfg.max_ready,
            max_total: cfg.max_total,
            scale_override: st.scale(&cfg),
            counts: st.counts(),
            engines: engines
                .iter()
                .enumerate()
                .map(|(e, name)| (name.to_string(), st.counts_on(e)))
                .collect(),
            waiters: st.waiters(),
            lendable: st.lendable() as u32,
            creating_cold: st.creating_cold(),
            acquires: AcquireStats {
                total: c.acquires_total,
                pool: c.acquires_pool,
                cold: c.acquires_cold,
                rejected: c.acquires_rejected,
                hit_rate: (c.acquires_total > 0)
                    .then(|| c.acquires_pool as f64 / c.acquires_total as f64),
                latency_ms_p50: p50,
                latency_ms_p99: p99,
            },
            creates: CreateStats {
                total: c.creates_total,
                failures: c.create_failures,
                consecutive_failures: st.consecutive_failures(),
                median_ms: creates.get(creates.len() / 2).copied(),
                p99_ms: creates
                    .get((creates.len() * 99).div_ceil(100).saturating_sub(1))
                    .copied(),
                last_error: st.last_error().map(str::to_string),
                backoff_ms: st
                    .next_retry(now)
                    .map(|t| t.duration_since(now).as_millis() as u64),
                breakers: st
                    .breakers()
                    .iter()
                    .map(|(e, b)| {
                        let name = engines.get(e).map_or("?", |n| n);
                        let stats = BreakerStats {
                            consecutive_failures: b.failures,
                            open: b.failures >= breaker.threshold,
                            backoff_ms: st
                                .breakers()
                                .backoff_left(e, now)
                                .map(|d| d.as_millis() as u64),
                        };
                        (name.to_string(), stats)
                    })
                    .collect(),
            },
            policies: PolicyNames {
                sizing: pool.policies().sizing.name(),
                exhaustion: pool.policies().exhaustion.name(),
                health: pool.policies().health.as_ref().map(|h| h.name()),
            },
            counters: c,
            idle_container_seconds: st.cost().idle_seconds(now),
            peak_containers: st.cost().peak_total(),
            hibernation: st.hibernation_times(),
        }
    }
}
