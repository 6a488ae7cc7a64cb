//! `predictive`: keep the base stock that the arrival rate needs over a create's lead time, as
//! many again as a fan-out under way brought, and nothing once demand stops (see
//! `warmpool_policy::sizing::predictive`). Settings: `window_ms`, `bucket_ms`, `alpha`,
//! `headroom`, `miss`, `lead`, `default_create_ms`, `memory_ms`, `quiet_gaps`, `burst_ms`,
//! `burst_min`, `burst_gain`.
use warmpool_plugin_sdk::policy::sizing::{self, PredictiveConfig};
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Predictive;

impl warmpool_plugin_sdk::Sizing for Predictive {
    type Config = PredictiveConfig;
    fn configure(config: &[(String, String)]) -> Result<PredictiveConfig, String> {
        PredictiveConfig::from_pairs(config)
    }
    fn decide(c: &PredictiveConfig, s: &PoolSnapshot) -> SizingDecision {
        sizing::predictive(s, c)
    }
}

warmpool_plugin_sdk::export_sizing!(Predictive);
