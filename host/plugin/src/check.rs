//! `warmpool plugin check FILE --world W`: load a component as the daemon would, run it on
//! sample inputs, and print its answers.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use warmpool_core::policy_logic::{
    AcquireSample, AcquireSource, ContainerInfo, ExhaustionRequest, PoolSnapshot, ProbeResult,
};

use crate::component::Loaded;
use crate::convert::Cut;
use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::sandbox::Limits;
use crate::world::World;

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

/// Why a check failed, with whatever the guest logged before it did.
#[derive(Debug)]
pub struct CheckError {
    /// The failure itself.
    pub error: PluginError,
    /// Lines the guest logged before the failure, oldest first.
    pub log: Vec<String>,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if !self.log.is_empty() {
            write!(f, "\nguest log:")?;
            for line in &self.log {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl From<PluginError> for CheckError {
    fn from(error: PluginError) -> Self {
        Self {
            error,
            log: Vec::new(),
        }
    }
}

/// Check `path` against `world`; the report lists each sample and the plugin's answer, then
/// the guest's own log lines. Every call runs as in the daemon: on the plugin runtime, under
/// the default deadline and memory cap, so a guest that sleeps, loops or binds a socket fails
/// with a reason instead of hanging or crashing the command.
pub async fn check(
    path: &Path,
    world: World,
    config: &[(String, String)],
) -> Result<String, CheckError> {
    let engine =
        PluginEngine::new(Limits::default()).map_err(|e| PluginError::Init(format!("{e:#}")))?;
    let (e, p, c) = (engine.clone(), path.to_path_buf(), config.to_vec());
    engine
        .run(Duration::from_secs(600), async move {
            run_check(&e, &p, world, &c).await
        })
        .await
        .unwrap_or_else(|| Err(PluginError::Init("the check did not finish".into()).into()))
}

async fn run_check(
    engine: &Arc<PluginEngine>,
    path: &Path,
    world: World,
    config: &[(String, String)],
) -> Result<String, CheckError> {
    let l = Loaded::read_and_compile(engine, None, world, path, config, true).await?;
    let fail = |error: PluginError| CheckError {
        error,
        log: l.captured_log(),
    };
    l.warm().await.map_err(fail)?;
    let cut = Cut::default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: a valid {} component (sha256 {})",
        path.display(),
        world.wit_name(),
        l.sha256
    );
    out.push_str(&samples_report(&l, world, &cut).await.map_err(fail)?);
    let (memory, code) = l.memory_bytes();
    let _ = writeln!(
        out,
        "  memory: {} KiB of linear memory, {} KiB of machine code",
        memory >> 10,
        code >> 10
    );
    if cut.count() > 0 {
        let _ = writeln!(out, "  note: {} answer(s) were cut to bounds", cut.count());
    }
    let log = l.captured_log();
    if !log.is_empty() {
        let _ = writeln!(out, "  guest log:");
        for line in log {
            let _ = writeln!(out, "    {line}");
        }
    }
    Ok(out)
}

async fn samples_report(l: &Loaded, world: World, cut: &Cut) -> Result<String, PluginError> {
    let mut out = String::new();
    for (name, s) in samples() {
        let answer = match world {
            World::Sizing => {
                let d = l.decide(&s, cut).await?;
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
                    &s,
                    cut
                )
                .await?
            ),
            World::Health => {
                let c = ContainerInfo {
                    id: format!("sample-{name}"),
                    pool: "sample".into(),
                    age_ms: 60_000,
                    uses: 0,
                };
                let plan = l.plan(&c, cut).await?;
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
                    l.judge(&c, &ok, cut).await?,
                    l.judge(&c, &bad, cut).await?
                )
            }
        };
        let _ = writeln!(out, "  {name:<6} → {answer}");
    }
    Ok(out)
}
