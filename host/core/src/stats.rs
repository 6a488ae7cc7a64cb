//! The stats view the API serves (a read-only copy of each pool's state), and warm-up, which
//! waits on it.

use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};

use crate::backend::Backend;
use crate::counters::{Counters, StateCounts};
use crate::error::WarmUpError;
use crate::manager::Manager;

/// A pool as `GET /v1/pools/{name}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    pub name: String,
    pub image: String,
    /// `ok`, `degraded` (create breaker open), `engine_down` or `draining`.
    pub status: &'static str,
    pub target: u32,
    pub target_reason: String,
    pub min_ready: u32,
    pub max_ready: u32,
    pub max_total: u32,
    pub counts: StateCounts,
    pub waiters: u32,
    /// Of `counts.ready`, those a commit made lendable (all of them when nothing is persisted).
    pub lendable: u32,
    /// Of `counts.creating`, the creates made for one specific acquire (exhaustion `cold`).
    pub creating_cold: u32,
    pub acquires: AcquireStats,
    pub creates: CreateStats,
    pub policies: PolicyNames,
    pub counters: Counters,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcquireStats {
    pub total: u64,
    pub pool: u64,
    pub cold: u64,
    pub rejected: u64,
    /// Share of acquires served warm from the pool; `null` before the first acquire.
    pub hit_rate: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateStats {
    pub total: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub median_ms: Option<u32>,
    pub last_error: Option<String>,
    /// Milliseconds until the next create is allowed after a failure.
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyNames {
    pub sizing: String,
    pub exhaustion: String,
    pub health: Option<String>,
}

impl<B: Backend> Manager<B> {
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        let pool = self.pool(name)?;
        let cfg = pool.cfg();
        let mut st = pool.lock();
        let now = Instant::now();
        let status = if st.draining() {
            "draining"
        } else if !self.engine_up() {
            "engine_down"
        } else if st.degraded(&self.cfg.breaker) {
            "degraded"
        } else {
            "ok"
        };
        let [p50, p99] = st
            .latency()
            .quantiles_ms([0.5, 0.99])
            .map_or([None, None], |q| q.map(Some));
        let c = st.counters();
        let target = st.effective_target(&cfg);
        let mut creates: Vec<u32> = st.recent_creates_ms().collect();
        creates.sort_unstable();
        Some(PoolStats {
            name: cfg.name.clone(),
            image: cfg.spec.image.clone(),
            status,
            target,
            target_reason: st.target().1.to_string(),
            min_ready: cfg.min_ready,
            max_ready: cfg.max_ready,
            max_total: cfg.max_total,
            counts: st.counts(),
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
                last_error: st.last_error().map(str::to_string),
                backoff_ms: st
                    .retry_at()
                    .filter(|t| *t > now)
                    .map(|t| t.duration_since(now).as_millis() as u64),
            },
            policies: PolicyNames {
                sizing: pool.policies().sizing.name(),
                exhaustion: pool.policies().exhaustion.name(),
                health: pool.policies().health.as_ref().map(|h| h.name()),
            },
            counters: c,
        })
    }

    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        self.pools()
            .keys()
            .filter_map(|n| self.pool_stats(n))
            .collect()
    }

    /// Wait until the pool has as many ready containers as its target.
    pub async fn warm_up(&self, name: &str, within: Duration) -> Result<PoolStats, WarmUpError> {
        let unknown = || WarmUpError::UnknownPool(name.into());
        let pool = self.pool(name).ok_or_else(unknown)?;
        let mut changed = pool.changed.subscribe();
        let deadline = Instant::now() + within;
        pool.touch();
        loop {
            let (ready, target) = {
                let mut st = pool.lock();
                (st.counts().ready, st.effective_target(&pool.cfg()))
            };
            if self.is_ready() && ready >= target {
                // A reload may have removed the pool while we waited.
                return self.pool_stats(name).ok_or_else(unknown);
            }
            if !matches!(timeout_at(deadline, changed.changed()).await, Ok(Ok(()))) {
                return Err(WarmUpError::Timeout {
                    pool: name.into(),
                    target,
                    ready,
                    waited: within,
                });
            }
        }
    }
}
