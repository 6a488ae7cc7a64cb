//! `cold`: create a container for the request now.
use warmpool_plugin_sdk::policy::{ExhaustionAction, ExhaustionRequest, PoolSnapshot, exhaustion};

struct Cold;

impl warmpool_plugin_sdk::Exhaustion for Cold {
    type Config = ();
    fn configure(config: &[(String, String)]) -> Result<(), String> {
        match config.first() {
            Some((k, _)) => Err(format!("cold takes no settings, got {k:?}")),
            None => Ok(()),
        }
    }
    fn on_exhausted(_: &(), r: &ExhaustionRequest, s: &PoolSnapshot) -> ExhaustionAction {
        exhaustion::cold(r, s)
    }
}

warmpool_plugin_sdk::export_exhaustion!(Cold);
