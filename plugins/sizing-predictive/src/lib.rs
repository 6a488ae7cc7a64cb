//! `predictive`: keep `rate × create latency + headroom` ready, the rate forecast by an EWMA.
//! Settings: `window_ms`, `bucket_ms`, `alpha`, `headroom`, `default_create_ms`.
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
