//! How much of each fault and promise a set of seeds exercised. A change that quietly disables
//! a fault (or makes a check vacuous) shows here as a count that fell: the simulation test
//! prints the table at the end and fails when any count is below its minimum.

use std::fmt::Write as _;

/// One run's (or a set of runs') exercise counts, in the order of [`Exercise::ROWS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exercise(pub [u64; ROWS]);

// By hand: the standard library derives `Default` for arrays of at most 32.
impl Default for Exercise {
    fn default() -> Self {
        Self([0; ROWS])
    }
}

const ROWS: usize = 40;

/// A counter: its index in [`Exercise`].
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Count {
    /// Releases for reuse whose scrub passed and whose container was lent again.
    Reuses,
    /// `kill -9` of the daemon.
    Crashes,
    /// Crashes while a reuse's reset was under way (that container must never be lent).
    CrashMidReset,
    /// Graceful restarts.
    Restarts,
    /// Times the store started failing its commits.
    StoreFailures,
    /// Hand-outs while the store failed (each of a container already lendable).
    LentWhileStoreFails,
    /// Restarts whose store could not be loaded for a while.
    StoreLoadFailures,
    /// Crashes that lost the store's file.
    StoreLosses,
    /// Leases a restart restored (their expiry checked).
    Restored,
    /// Times an engine went down.
    EngineOutages,
    /// Death events the engine lost.
    LostDeaths,
    /// Hangs with no end of their own, ended by the daemon's deadline.
    EndlessHangs,
    /// Execs past their timeout that the engine let run, ended by the daemon.
    ExecOverruns,
    /// Containers at a restart whose spec or image no longer matched (never re-adopted).
    StaleAtRestart,
    /// Seeds with another `host_id`'s containers on the engine (never touched).
    ForeignHosts,
    /// Acquires answered 503 by a degraded pool.
    Degraded,
    /// Creates that arrived while their pool's breaker on that engine was open (trials).
    BreakerTrials,
    /// Agents that died.
    AgentDeaths,
    /// Agent channels that stalled.
    AgentStalls,
    /// Forged frames from an agent.
    AgentForged,
    /// Checks that found a tenant holding leases (its count in the lease table checked).
    TenantCounts,
    /// Scale overrides set (`PUT` answered).
    ScaleSets,
    /// Scale overrides cleared by a `DELETE`.
    ScaleClears,
    /// Scale requests refused as out of bounds (and rightly so).
    ScaleRefused,
    /// Scale overrides cleared by a reload that changed their pool's sizes or removed it.
    ScaleReloadCleared,
    /// Scale overrides a restart put back (checked against what the clients were told).
    ScaleRestored,
    /// Leases handed out with cpus or memory of their own (checked on the engine).
    ResizedAcquires,
    /// Updates of a container's limits that failed (at acquire, `PATCH` or before a reuse).
    ResizeFailures,
    /// Updates that put a resized container back to its pool's limits (before a reuse).
    LimitsRestored,
    /// Hand-outs, with the pool's limits, of a container an earlier lease had resized.
    RelentRestored,
    /// `PATCH`es of a lease's limits answered with them.
    Resizes,
    /// Asks for limits the pool refused (each checked to deserve it).
    ResizeRefused,
    /// Creates of a pool naming a runtime, in seeds where some engine lacks it: each reached
    /// an engine having it (the fake records any other as a broken promise).
    RuntimePlaced,
    /// Acquires of such a pool answered 503 because no engine that was up had its runtime.
    RuntimeMissing,
    /// Leases a client's suspend step suspended.
    Suspends,
    /// Suspended leases a client's resume step resumed.
    Resumes,
    /// Suspends refused because the engine could not checkpoint (409, the lease runs on).
    SuspendRefused,
    /// Leases found suspended that no client asked to suspend: idle suspends.
    IdleSuspends,
    /// Suspends and resumes the fake engine failed (before, after, or losing the memory).
    HibernateFaults,
    /// Suspended leases a crash or a restart left behind (checked after the restart).
    SuspendedAtRestart,
}

/// Name, what it counts, and the minimum per 1,000 seeds.
const META: [(&str, &str, u64); ROWS] = [
    ("reuses", "reuses whose scrub passed", 200),
    ("crashes", "kill -9", 300),
    ("crash_mid_reset", "crashes during a reuse's reset", 5),
    ("restarts", "graceful restarts", 150),
    ("store_failures", "store started failing", 100),
    (
        "lent_while_store_fails",
        "hand-outs while the store failed",
        20,
    ),
    (
        "store_load_failures",
        "restarts that could not load the store",
        30,
    ),
    ("store_losses", "crashes that lost the store", 20),
    (
        "restored",
        "leases restored by a restart (expiry checked)",
        50,
    ),
    ("engine_outages", "engine went down", 300),
    ("lost_deaths", "death events lost", 100),
    ("endless_hangs", "hangs ended by the daemon's deadline", 100),
    (
        "exec_overruns",
        "execs past their timeout ended by the daemon",
        20,
    ),
    ("stale_at_restart", "containers stale at a restart", 50),
    (
        "foreign_hosts",
        "seeds with another host_id's containers",
        100,
    ),
    ("degraded_503", "acquires answered 503 (degraded)", 20),
    (
        "breaker_trials",
        "creates under an open breaker (one at a time)",
        50,
    ),
    ("agent_deaths", "agents that died", 30),
    ("agent_stalls", "agent channels that stalled", 30),
    ("agent_forged", "forged agent frames", 30),
    (
        "tenant_counts",
        "tenant lease counts checked while held",
        50_000,
    ),
    ("scale_sets", "scale overrides set", 300),
    ("scale_clears", "scale overrides cleared by DELETE", 50),
    ("scale_refused", "scale requests refused out of bounds", 50),
    (
        "scale_reload_cleared",
        "scale overrides cleared by a reload",
        20,
    ),
    ("scale_restored", "scale overrides a restart put back", 20),
    (
        "resized_acquires",
        "leases handed out with their own limits",
        300,
    ),
    ("resize_failures", "updates of limits that failed", 80),
    (
        "limits_restored",
        "resized containers put back before a reuse",
        40,
    ),
    (
        "relent_restored",
        "resized containers lent again with the pool's",
        15,
    ),
    ("resizes", "PATCHes of a lease's limits answered", 120),
    ("resize_refused", "asks for limits refused (rightly)", 5000),
    (
        "runtime_placed",
        "creates of a runtime pool, all on engines having it",
        300,
    ),
    (
        "runtime_missing_503",
        "acquires answered 503: no engine up has the runtime",
        5,
    ),
    ("suspends", "leases suspended by a client", 300),
    ("resumes", "suspended leases resumed by a client", 100),
    ("suspend_refused", "suspends refused: no checkpoints", 30),
    ("idle_suspends", "leases suspended when idle", 100),
    ("hibernate_faults", "suspends and resumes that failed", 50),
    (
        "suspended_at_restart",
        "suspended leases at a crash or restart",
        30,
    ),
];

impl Exercise {
    /// Add `n` to counter `c`.
    pub fn add(&mut self, c: Count, n: u64) {
        self.0[c as usize] += n;
    }

    /// Counter `c`.
    pub fn get(&self, c: Count) -> u64 {
        self.0[c as usize]
    }

    /// Sum of two tables.
    pub fn merge(&mut self, o: &Exercise) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }

    /// The minimum of each counter for `seeds` seeds (rounded down, at least 1).
    fn minimum(seeds: u64, per_1000: u64) -> u64 {
        (per_1000 * seeds / 1000).max(1)
    }

    /// The table for `seeds` seeds: each count, its minimum, and whether it is met.
    pub fn table(&self, seeds: u64) -> String {
        let mut s = format!(
            "{:<24} {:>8} {:>8}  {}\n",
            "exercised", "count", "minimum", "what"
        );
        for (i, (name, what, per)) in META.iter().enumerate() {
            let min = Self::minimum(seeds, *per);
            let flag = if self.0[i] < min { "  << TOO FEW" } else { "" };
            let _ = writeln!(s, "{name:<24} {:>8} {min:>8}  {what}{flag}", self.0[i]);
        }
        s
    }

    /// The counters below their minimum for `seeds` seeds.
    pub fn short(&self, seeds: u64) -> Vec<String> {
        META.iter()
            .enumerate()
            .filter(|(i, (_, _, per))| self.0[*i] < Self::minimum(seeds, *per))
            .map(|(i, (name, _, per))| {
                format!("{name}: {} < {}", self.0[i], Self::minimum(seeds, *per))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_below_its_minimum_is_reported() {
        let mut e = Exercise::default();
        for i in 0..ROWS {
            e.0[i] = 1_000_000;
        }
        assert!(e.short(1000).is_empty());
        e.0[Count::AgentStalls as usize] = 3;
        let short = e.short(1000);
        assert_eq!(short, vec!["agent_stalls: 3 < 30".to_string()]);
        assert!(e.table(1000).contains("<< TOO FEW"));
        // One seed still needs one of each.
        assert_eq!(Exercise::default().short(1).len(), ROWS);
    }
}
