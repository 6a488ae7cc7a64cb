//! `cold-aware`: a sizing policy that grows the pool after acquires had to wait for a cold
//! create. Each cold acquire in the last `window_ms` adds `per_cold` containers to `min_ready`,
//! capped at `max_ready`.
use warmpool_plugin_sdk::policy::{AcquireSource, PoolSnapshot, SizingDecision, config};
use warmpool_plugin_sdk::{Level, Sizing, export_sizing, log};

struct ColdAware;

/// Settings, from the pool's `plugins.sizing.config` in warmpool.yaml.
struct Settings {
    window_ms: u64,
    per_cold: u32,
}

impl Sizing for ColdAware {
    type Config = Settings;

    fn configure(pairs: &[(String, String)]) -> Result<Settings, String> {
        let mut s = Settings {
            window_ms: 60_000,
            per_cold: 2,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "window_ms" => s.window_ms = config::number(k, v)?,
                "per_cold" => s.per_cold = config::number(k, v)?,
                other => return Err(format!("unknown setting {other:?}")),
            }
        }
        log(
            Level::Info,
            &format!(
                "cold-aware: window {} ms, {} per cold acquire",
                s.window_ms, s.per_cold
            ),
        );
        Ok(s)
    }

    fn decide(s: &Settings, snap: &PoolSnapshot) -> SizingDecision {
        let since = snap.now_ms.saturating_sub(s.window_ms);
        let colds = snap
            .recent_acquires
            .iter()
            .filter(|a| a.at_ms >= since && a.source == AcquireSource::Cold)
            .count() as u32;
        let target = snap
            .min_ready
            .saturating_add(colds.saturating_mul(s.per_cold))
            .min(snap.max_ready);
        SizingDecision {
            target,
            reason: format!("cold-aware: {colds} cold acquires in {} ms", s.window_ms),
        }
    }
}

export_sizing!(ColdAware);
