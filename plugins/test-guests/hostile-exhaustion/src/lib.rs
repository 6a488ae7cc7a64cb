//! Test guest: an exhaustion plugin that misbehaves as its `mode` setting says: `retry-forever`
//! (refuse with `Retry-After` of u64::MAX and a 1 MiB reason) or `sleep` (park for 90 s).
use std::time::Duration;

use warmpool_plugin_sdk::policy::{ExhaustionAction, ExhaustionRequest, PoolSnapshot};

struct Hostile;

impl warmpool_plugin_sdk::Exhaustion for Hostile {
    type Config = String;
    fn configure(config: &[(String, String)]) -> Result<String, String> {
        Ok(config
            .iter()
            .find(|(k, _)| k == "mode")
            .map_or_else(|| "retry-forever".into(), |(_, v)| v.clone()))
    }

    fn on_exhausted(mode: &String, _: &ExhaustionRequest, _: &PoolSnapshot) -> ExhaustionAction {
        if mode == "sleep" {
            std::thread::sleep(Duration::from_secs(90));
        }
        ExhaustionAction::Fail {
            retry_after_ms: u64::MAX,
            reason: "r".repeat(1 << 20),
        }
    }
}

warmpool_plugin_sdk::export_exhaustion!(Hostile);
