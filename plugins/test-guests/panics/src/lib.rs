//! Test guest: decide panics with a message. Built only for warmpool's tests: the host must contain it.
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Hostile;

impl warmpool_plugin_sdk::Sizing for Hostile {
    type Config = ();
    fn configure(_: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }
    fn decide(_: &(), s: &PoolSnapshot) -> SizingDecision {
        panic!("hostile guest refuses to size a pool of {} ready", s.ready);
    }
}

warmpool_plugin_sdk::export_sizing!(Hostile);
