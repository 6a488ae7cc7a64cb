//! Per-pool counters and the acquire-latency window, the stats view the API serves, and
//! warm-up (which waits on that view).

use std::collections::VecDeque;

use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};

use crate::backend::Backend;
use crate::error::WarmUpError;
use crate::manager::Manager;

/// Monotonic counters of one pool.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    pub acquires_total: u64,
    pub acquires_pool: u64,
    pub acquires_cold: u64,
    pub acquires_rejected: u64,
    pub creates_total: u64,
    pub create_failures: u64,
    pub destroyed_total: u64,
    pub expired_total: u64,
    pub recycled_total: u64,
    pub unhealthy_total: u64,
    pub reused_total: u64,
    pub reset_failures: u64,
    /// Ready containers of an earlier run taken back at startup instead of recreated.
    pub adopted_total: u64,
}

const WINDOW: usize = 1024;

/// The last [`WINDOW`] acquire latencies, in microseconds, for p50/p99.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    samples: VecDeque<u32>,
}

impl LatencyWindow {
    pub fn push(&mut self, micros: u32) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(micros);
    }

    /// Quantiles `qs` (0..=1) in milliseconds; `None` when no acquire was measured yet.
    pub fn quantiles_ms<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<u32> = self.samples.iter().copied().collect();
        v.sort_unstable();
        Some(qs.map(|q| {
            let idx = ((v.len() - 1) as f64 * q).round() as usize;
            f64::from(v[idx]) / 1000.0
        }))
    }
}

/// Containers of a pool per state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StateCounts {
    pub creating: u32,
    pub ready: u32,
    pub leased: u32,
    pub resetting: u32,
    pub removing: u32,
    pub unhealthy: u32,
}

impl StateCounts {
    pub fn total(&self) -> u32 {
        self.creating + self.ready + self.leased + self.resetting + self.removing + self.unhealthy
    }
}

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
        let mut st = pool.lock();
        let now = Instant::now();
        let status = if st.draining {
            "draining"
        } else if !self.engine_up() {
            "engine_down"
        } else if st.degraded(&self.cfg.breaker) {
            "degraded"
        } else {
            "ok"
        };
        let [p50, p99] = st
            .latency
            .quantiles_ms([0.5, 0.99])
            .map_or([None, None], |q| q.map(Some));
        let c = st.counters;
        let target = st.effective_target(&pool.cfg());
        let mut creates: Vec<u32> = st.recent_creates_ms.iter().copied().collect();
        creates.sort_unstable();
        Some(PoolStats {
            name: pool.cfg().name.clone(),
            image: pool.cfg().spec.image.clone(),
            status,
            target,
            target_reason: st.target_reason.clone(),
            min_ready: pool.cfg().min_ready,
            max_ready: pool.cfg().max_ready,
            max_total: pool.cfg().max_total,
            counts: StateCounts {
                creating: st.creating,
                ready: st.ready.len() as u32,
                leased: st.leased,
                resetting: st.resetting,
                removing: st.removing,
                unhealthy: st.unhealthy,
            },
            waiters: st.waiters.len() as u32,
            lendable: (st.ready.len() - st.unlendable()) as u32,
            creating_cold: st.creating_cold,
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
                consecutive_failures: st.consecutive_failures,
                median_ms: creates.get(creates.len() / 2).copied(),
                last_error: st.last_error.clone(),
                backoff_ms: st
                    .retry_at
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
        let pool = self
            .pool(name)
            .ok_or_else(|| WarmUpError::UnknownPool(name.into()))?;
        let mut changed = pool.changed.subscribe();
        let deadline = Instant::now() + within;
        pool.touch();
        loop {
            let (ready, target) = {
                let mut st = pool.lock();
                (st.ready.len() as u32, st.effective_target(&pool.cfg()))
            };
            if self.is_ready() && ready >= target {
                return Ok(self.pool_stats(name).expect("pool exists"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_window() {
        let mut w = LatencyWindow::default();
        assert!(w.quantiles_ms([0.5]).is_none());
        for us in 1..=100 {
            w.push(us * 10);
        }
        let [p50, p99] = w.quantiles_ms([0.5, 0.99]).unwrap();
        assert_eq!(p50, 0.51);
        assert_eq!(p99, 0.99);
    }
}
