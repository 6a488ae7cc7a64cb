//! What the plugin host's test files share: a sample pool snapshot, and plugin settings.

use warmpool_core::policy_logic::PoolSnapshot;

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
