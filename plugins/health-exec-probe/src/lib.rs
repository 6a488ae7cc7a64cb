//! `exec-probe`: run a command in the container; healthy on exit 0. Settings: `cmd`, `timeout_ms`.
use warmpool_plugin_sdk::policy::health::ExecProbe;
use warmpool_plugin_sdk::policy::{ContainerInfo, Probe, ProbeResult, Verdict};

struct Check;

impl warmpool_plugin_sdk::Health for Check {
    type Config = ExecProbe;
    fn configure(config: &[(String, String)]) -> Result<ExecProbe, String> {
        ExecProbe::from_pairs(config)
    }
    fn plan(p: &ExecProbe, c: &ContainerInfo) -> Vec<Probe> {
        p.plan(c)
    }
    fn judge(p: &ExecProbe, c: &ContainerInfo, r: &[ProbeResult]) -> Verdict {
        p.judge(c, r)
    }
}

warmpool_plugin_sdk::export_health!(Check);
