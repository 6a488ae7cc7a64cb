//! `warmpool plugin check FILE --world W`: load a component as the daemon would, run it on
//! sample inputs, and print its answers.

use std::fmt::Write as _;
use std::path::Path;

use warmpool_core::policy_logic::{
    AcquireSample, AcquireSource, ContainerInfo, ExhaustionRequest, PoolSnapshot, ProbeResult,
};

use crate::component::{Loaded, PluginError, World};
use crate::engine::{Limits, PluginEngine};

/// Sample snapshots: an idle pool, a burst, and a dry pool with queued acquires.
pub fn samples() -> Vec<(&'static str, PoolSnapshot)> {
    let base = PoolSnapshot {
        now_ms: 600_000,
        min_ready: 2,
        max_ready: 10,
        max_total: 20,
        global_free: 30,
        current_target: 2,
        idle_timeout_ms: 300_000,
        recent_create_ms: vec![420, 390, 450],
        ..Default::default()
    };
    let burst: Vec<AcquireSample> = (0..12)
        .map(|i| AcquireSample {
            at_ms: 595_000 + i * 400,
            source: AcquireSource::Pool,
        })
        .collect();
    vec![
        (
            "idle",
            PoolSnapshot {
                ready: 2,
                since_last_acquire_ms: Some(400_000),
                ..base.clone()
            },
        ),
        (
            "burst",
            PoolSnapshot {
                ready: 1,
                leased: 9,
                since_last_acquire_ms: Some(200),
                recent_acquires: burst.clone(),
                ..base.clone()
            },
        ),
        (
            "dry",
            PoolSnapshot {
                ready: 0,
                creating: 2,
                leased: 12,
                waiters: 3,
                since_last_acquire_ms: Some(10),
                recent_acquires: burst,
                ..base
            },
        ),
    ]
}

/// Check `path` against `world`; the report lists each sample and the plugin's answer.
pub fn check(
    path: &Path,
    world: World,
    config: &[(String, String)],
) -> Result<String, PluginError> {
    let engine =
        PluginEngine::new(Limits::default()).map_err(|e| PluginError::Init(format!("{e:#}")))?;
    let l = Loaded::load(&engine, None, world, path, config)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: a valid {} component (sha256 {})",
        path.display(),
        world.wit_name(),
        l.sha256
    );
    for (name, s) in samples() {
        let answer = match world {
            World::Sizing => {
                let d = l.decide(&s)?;
                if d.target > s.max_ready {
                    return Err(PluginError::Malformed(format!(
                        "{name}: target {} > max_ready {}",
                        d.target, s.max_ready
                    )));
                }
                format!("target {} ({})", d.target, d.reason)
            }
            World::Exhaustion => format!(
                "{:?}",
                l.on_exhausted(
                    &ExhaustionRequest {
                        wait_ms: Some(2_000),
                        wait_timeout_ms: 30_000
                    },
                    &s
                )?
            ),
            World::Health => {
                let c = ContainerInfo {
                    id: format!("sample-{name}"),
                    pool: "sample".into(),
                    age_ms: 60_000,
                    uses: 0,
                };
                let plan = l.plan(&c)?;
                let ok: Vec<ProbeResult> = plan
                    .iter()
                    .map(|_| ProbeResult::Exec {
                        exit_code: 0,
                        output: String::new(),
                    })
                    .collect();
                let bad: Vec<ProbeResult> = plan.iter().map(|_| ProbeResult::TimedOut).collect();
                format!(
                    "plan {plan:?}; all pass → {:?}; all time out → {:?}",
                    l.judge(&c, &ok)?,
                    l.judge(&c, &bad)?
                )
            }
        };
        let _ = writeln!(out, "  {name:<6} → {answer}");
    }
    Ok(out)
}
