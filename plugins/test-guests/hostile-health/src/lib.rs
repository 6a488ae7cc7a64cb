//! Test guest: a health plugin that asks for too much: 100 probes of a century each, with argv
//! lists of 100 items, and verdicts with 1 MiB reasons.
use warmpool_plugin_sdk::policy::{ContainerInfo, Probe, ProbeResult, Verdict};

struct Hostile;

impl warmpool_plugin_sdk::Health for Hostile {
    type Config = ();
    fn configure(_: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }

    fn plan(_: &(), _: &ContainerInfo) -> Vec<Probe> {
        (0..100)
            .map(|_| Probe::Exec {
                argv: vec!["true".to_string(); 100],
                timeout_ms: u64::MAX,
            })
            .collect()
    }

    fn judge(_: &(), _: &ContainerInfo, _: &[ProbeResult]) -> Verdict {
        Verdict::Unhealthy {
            reason: "u".repeat(1 << 20),
        }
    }
}

warmpool_plugin_sdk::export_health!(Hostile);
