//! Test guest: decide never returns. Built only for warmpool's tests: the host must contain it.
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Hostile;

impl warmpool_plugin_sdk::Sizing for Hostile {
    type Config = ();
    fn configure(_: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }
    fn decide(_: &(), _s: &PoolSnapshot) -> SizingDecision {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

warmpool_plugin_sdk::export_sizing!(Hostile);
