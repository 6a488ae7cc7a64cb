//! What one simulated run measured: each client's fate, folded into a policy's figures.

use std::time::Duration;

use serde::Serialize;

/// How one acquire ended (simulated, or replayed against a daemon).
#[derive(Debug, Clone, Copy)]
pub enum Served {
    /// It got a lease after `waited` (zero: a ready container was lent at once).
    Lent {
        /// Virtual time from the acquire to the lease.
        waited: Duration,
        /// A container created for it (exhaustion `cold`).
        cold: bool,
    },
    /// It was refused (exhausted, timed out waiting, or a failed cold create).
    Refused,
}

/// What a pool's own figures say a run cost: differences of its stats between the trace's
/// start and its last release (`peak_containers` is the stat itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// Idle container-seconds accrued during the run.
    pub idle_container_seconds: f64,
    /// The most containers counted at once.
    pub peak_containers: u32,
    /// Containers created during the run.
    pub creates: u64,
    /// Creates that failed during the run.
    pub create_failures: u64,
}

/// Clients' fates as they come in.
#[derive(Debug, Default)]
pub struct Tally {
    warm: u64,
    waited: u64,
    cold: u64,
    refused: u64,
    /// Waits of the acquires that got a lease, in microseconds.
    waits_us: Vec<u64>,
}

impl Tally {
    /// Count one acquire's fate.
    pub fn add(&mut self, s: Served) {
        match s {
            Served::Lent { waited, cold } => {
                self.waits_us.push(waited.as_micros() as u64);
                match (cold, waited.is_zero()) {
                    (true, _) => self.cold += 1,
                    (false, true) => self.warm += 1,
                    (false, false) => self.waited += 1,
                }
            }
            Served::Refused => self.refused += 1,
        }
    }

    /// The policy's figures: the clients' fates, and what the pool's stats say it cost.
    pub fn outcome(
        mut self,
        policy: &str,
        cost: Cost,
        span: Duration,
        timeline: Vec<Sample>,
    ) -> Outcome {
        self.waits_us.sort_unstable();
        let acquires = self.warm + self.waited + self.cold + self.refused;
        let q = |p: f64| -> f64 {
            if self.waits_us.is_empty() {
                return 0.0;
            }
            // Nearest rank.
            let rank =
                ((p * self.waits_us.len() as f64).ceil() as usize).clamp(1, self.waits_us.len());
            self.waits_us[rank - 1] as f64 / 1000.0
        };
        Outcome {
            policy: policy.to_string(),
            acquires,
            warm: self.warm,
            waited: self.waited,
            cold: self.cold,
            rejected: self.refused,
            hit_rate: if acquires == 0 {
                0.0
            } else {
                self.warm as f64 / acquires as f64
            },
            wait_ms_p50: q(0.50),
            wait_ms_p99: q(0.99),
            wait_ms_max: q(1.0),
            idle_container_seconds: cost.idle_container_seconds,
            peak_containers: cost.peak_containers,
            creates: cost.creates,
            create_failures: cost.create_failures,
            span_s: span.as_secs_f64(),
            timeline,
            plugin: None,
        }
    }
}

/// One point of a run's timeline.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds from the trace's start.
    pub t_s: f64,
    /// Leases held then: the demand.
    pub leased: u32,
    /// Ready containers then: what the policy kept warm.
    pub ready: u32,
}

/// A policy's figures on a trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    /// The policy, as the run named it.
    pub policy: String,
    /// Acquires of the trace for the pool.
    pub acquires: u64,
    /// Acquires lent a ready container at once: the hits.
    pub warm: u64,
    /// Acquires lent one of the pool's containers after waiting for it.
    pub waited: u64,
    /// Acquires served by a container created for them (exhaustion `cold`).
    pub cold: u64,
    /// Acquires refused.
    pub rejected: u64,
    /// `warm / acquires`.
    pub hit_rate: f64,
    /// Median wait of the acquires that got a lease, in ms of simulated time (0 for a hit).
    pub wait_ms_p50: f64,
    /// 99th percentile of the same.
    pub wait_ms_p99: f64,
    /// Longest of the same.
    pub wait_ms_max: f64,
    /// The integral of ready, unleased containers from the trace's start to the last release.
    pub idle_container_seconds: f64,
    /// The most containers the pool counted at once, in any state (warm-up included).
    pub peak_containers: u32,
    /// Containers created during the trace.
    pub creates: u64,
    /// Creates that failed during the trace (none unless the setup injects faults).
    pub create_failures: u64,
    /// Simulated seconds from the trace's start to the last release.
    pub span_s: f64,
    /// Leases and ready containers over time, for the chart.
    pub timeline: Vec<Sample>,
    /// For a wasm policy: how its plugin fared (set by the caller, which owns the plugin host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRun>,
}

/// How a wasm policy's plugin fared during a run: a hostile or broken plugin is contained, and
/// its failures are answered by the pool's built-in policy, as in the daemon.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginRun {
    /// The plugin slot's state at the end: `active`, `benched`, `fallback`, …
    pub state: String,
    /// Calls made to the plugin.
    pub calls: u64,
    /// Calls that failed (trap, deadline, memory, a malformed answer).
    pub failures: u64,
    /// Decisions the built-in made instead (failures, and calls while the plugin was not
    /// loaded or was benched).
    pub fallbacks: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}
