//! What the plugin host's test files share: a sample pool snapshot, and plugin settings.

use std::time::Duration;

use warmpool_core::policy_logic::PoolSnapshot;
use warmpool_plugin_host::Limits;

/// A pool below its minimum: 1 ready of min 2, max 4 ready, 8 in all.
pub fn snap() -> PoolSnapshot {
    PoolSnapshot {
        ready: 1,
        min_ready: 2,
        max_ready: 4,
        max_total: 8,
        idle_timeout_ms: 1000,
        ..Default::default()
    }
}

/// Plugin settings as the host takes them.
pub fn cfg(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Limits for a test whose subject is not the call deadline (bounds on answers, logs, memory):
/// a guest that builds a 10 MB answer can take longer than the daemon's 50 ms under a loaded
/// CI machine, and such a test then failed on the deadline instead of checking its bound.
#[allow(dead_code)]
pub fn roomy() -> Limits {
    Limits {
        deadline: Duration::from_secs(5),
        load_deadline: Duration::from_secs(30),
        ..Limits::default()
    }
}
