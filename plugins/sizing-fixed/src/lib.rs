//! `fixed`: keep `min_ready` ready. The logic is `warmpool_policy::sizing::fixed`, the same
//! function the host runs natively.
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision, sizing};

struct Fixed;

impl warmpool_plugin_sdk::Sizing for Fixed {
    type Config = ();
    fn configure(config: &[(String, String)]) -> Result<(), String> {
        match config.first() {
            Some((k, _)) => Err(format!("fixed takes no settings, got {k:?}")),
            None => Ok(()),
        }
    }
    fn decide(_: &(), s: &PoolSnapshot) -> SizingDecision {
        sizing::fixed(s)
    }
}

warmpool_plugin_sdk::export_sizing!(Fixed);
