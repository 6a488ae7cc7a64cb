//! `adaptive`: scale up on a burst, hold through a cooldown, fall back to `min_ready` when idle.
//! Settings: `burst_window_ms`, `cooldown_ms`.
use warmpool_plugin_sdk::policy::sizing::{self, AdaptiveConfig};
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Adaptive;

impl warmpool_plugin_sdk::Sizing for Adaptive {
    type Config = AdaptiveConfig;
    fn configure(config: &[(String, String)]) -> Result<AdaptiveConfig, String> {
        AdaptiveConfig::from_pairs(config)
    }
    fn decide(c: &AdaptiveConfig, s: &PoolSnapshot) -> SizingDecision {
        sizing::adaptive(s, c)
    }
}

warmpool_plugin_sdk::export_sizing!(Adaptive);
