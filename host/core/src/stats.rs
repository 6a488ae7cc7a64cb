//! Per-pool counters and the acquire-latency window, and the stats view the API serves.

use std::collections::VecDeque;

use serde::Serialize;

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
