//! Test guest: decide answers a target above max_ready. Built only for warmpool's tests: the host must contain it.
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Hostile;

impl warmpool_plugin_sdk::Sizing for Hostile {
    type Config = ();
    fn configure(_: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }
    fn decide(_: &(), s: &PoolSnapshot) -> SizingDecision {
        SizingDecision {
            target: s.max_ready + 1000,
            reason: "more than allowed".into(),
        }
    }
}

warmpool_plugin_sdk::export_sizing!(Hostile);
