//! Test guest: decide allocates without bound. Built only for warmpool's tests: the host must contain it.
use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};

struct Hostile;

impl warmpool_plugin_sdk::Sizing for Hostile {
    type Config = ();
    fn configure(_: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }
    fn decide(_: &(), _s: &PoolSnapshot) -> SizingDecision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 16 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

warmpool_plugin_sdk::export_sizing!(Hostile);
