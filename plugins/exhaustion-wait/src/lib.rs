//! `wait`: queue FIFO for the next container, bounded by the client's and the pool's limits.
use warmpool_plugin_sdk::policy::{ExhaustionAction, ExhaustionRequest, PoolSnapshot, exhaustion};

struct Wait;

impl warmpool_plugin_sdk::Exhaustion for Wait {
    type Config = ();
    fn configure(config: &[(String, String)]) -> Result<(), String> {
        match config.first() {
            Some((k, _)) => Err(format!("wait takes no settings, got {k:?}")),
            None => Ok(()),
        }
    }
    fn on_exhausted(_: &(), r: &ExhaustionRequest, s: &PoolSnapshot) -> ExhaustionAction {
        exhaustion::wait(r, s)
    }
}

warmpool_plugin_sdk::export_exhaustion!(Wait);
