//! `http-probe`: GET a path on a port; healthy on 2xx/3xx. Settings: `port`, `path`, `timeout_ms`.
use warmpool_plugin_sdk::policy::health::HttpProbe;
use warmpool_plugin_sdk::policy::{ContainerInfo, Probe, ProbeResult, Verdict};

struct Check;

impl warmpool_plugin_sdk::Health for Check {
    type Config = HttpProbe;
    fn configure(config: &[(String, String)]) -> Result<HttpProbe, String> {
        HttpProbe::from_pairs(config)
    }
    fn plan(p: &HttpProbe, c: &ContainerInfo) -> Vec<Probe> {
        p.plan(c)
    }
    fn judge(p: &HttpProbe, c: &ContainerInfo, r: &[ProbeResult]) -> Verdict {
        p.judge(c, r)
    }
}

warmpool_plugin_sdk::export_health!(Check);
