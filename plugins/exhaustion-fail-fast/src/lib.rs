//! `fail-fast`: refuse at once with a retry hint of one create's time.
use warmpool_plugin_sdk::policy::{ExhaustionAction, ExhaustionRequest, PoolSnapshot, exhaustion};

struct FailFast;

impl warmpool_plugin_sdk::Exhaustion for FailFast {
    type Config = ();
    fn configure(config: &[(String, String)]) -> Result<(), String> {
        match config.first() {
            Some((k, _)) => Err(format!("fail-fast takes no settings, got {k:?}")),
            None => Ok(()),
        }
    }
    fn on_exhausted(_: &(), r: &ExhaustionRequest, s: &PoolSnapshot) -> ExhaustionAction {
        exhaustion::fail_fast(r, s)
    }
}

warmpool_plugin_sdk::export_exhaustion!(FailFast);
