//! The policy seams: sizing, exhaustion and health as trait objects.
//!
//! The pool core calls these and nothing else to decide; it never hard-wires a policy. The
//! built-in implementations here delegate to `warmpool-policy`, the single source that is also
//! compiled into the wasm guests. A plugin host (issue: wasm plugins) provides other
//! implementations of the same traits.
//!
//! The methods return boxed futures so that an implementation that must not run on a tokio worker
//! (a wasm guest) can move its work elsewhere.

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt, ready};
use warmpool_policy::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, Probe, ProbeResult,
    SizingDecision, Verdict, exhaustion, health, sizing,
};

/// Decides how many containers a pool keeps ready.
pub trait SizingPolicy: Send + Sync {
    /// How many containers the pool should keep ready now, and why.
    fn decide<'a>(&'a self, snapshot: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision>;
    /// A short name for stats and logs.
    fn name(&self) -> String;
}

/// Decides what an acquire does when no container is ready.
pub trait ExhaustionStrategy: Send + Sync {
    /// What an acquire that found no ready container does: wait, fail, or create cold.
    fn on_exhausted<'a>(
        &'a self,
        request: &'a ExhaustionRequest,
        snapshot: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction>;
    /// A short name for stats and logs.
    fn name(&self) -> String;
}

/// Decides whether a ready container is fit to hand out.
pub trait HealthCheck: Send + Sync {
    /// The probes to run against a ready container.
    fn plan<'a>(&'a self, info: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>>;
    /// The verdict on a container, given the results of its planned probes, in plan order.
    fn judge<'a>(
        &'a self,
        info: &'a ContainerInfo,
        results: &'a [ProbeResult],
    ) -> BoxFuture<'a, Verdict>;
    /// A short name for stats and logs.
    fn name(&self) -> String;
}

/// The three policies of one pool.
#[derive(Clone)]
pub struct Policies {
    /// How many containers the pool keeps ready.
    pub sizing: Arc<dyn SizingPolicy>,
    /// What an acquire does when no container is ready.
    pub exhaustion: Arc<dyn ExhaustionStrategy>,
    /// `None`: no periodic probing (dead containers are still caught by engine events).
    pub health: Option<Arc<dyn HealthCheck>>,
}

/// Built-in sizing policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinSizing {
    /// Always keep `min_ready` ready (`builtin:fixed`).
    Fixed,
    /// Follow demand between `min_ready` and `max_ready` (`builtin:adaptive`).
    Adaptive(sizing::AdaptiveConfig),
}

impl SizingPolicy for BuiltinSizing {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        let d = match self {
            Self::Fixed => sizing::fixed(s),
            Self::Adaptive(cfg) => sizing::adaptive(s, cfg),
        };
        ready(d).boxed()
    }
    fn name(&self) -> String {
        match self {
            Self::Fixed => "builtin:fixed".into(),
            Self::Adaptive(_) => "builtin:adaptive".into(),
        }
    }
}

/// Built-in exhaustion strategies (`exhaustion.strategy` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinExhaustion {
    /// Queue for the next ready container (`builtin:wait`).
    Wait,
    /// Refuse at once, with a retry hint (`builtin:fail-fast`).
    Fail,
    /// Create a container for the acquire (`builtin:cold`).
    Cold,
}

impl ExhaustionStrategy for BuiltinExhaustion {
    fn on_exhausted<'a>(
        &'a self,
        r: &'a ExhaustionRequest,
        s: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        let a = match self {
            Self::Wait => exhaustion::wait(r, s),
            Self::Fail => exhaustion::fail_fast(r, s),
            Self::Cold => exhaustion::cold(r, s),
        };
        ready(a).boxed()
    }
    fn name(&self) -> String {
        match self {
            Self::Wait => "builtin:wait".into(),
            Self::Fail => "builtin:fail-fast".into(),
            Self::Cold => "builtin:cold".into(),
        }
    }
}

/// Built-in health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinHealth {
    /// Healthy when a command run in the container exits 0 (`builtin:exec-probe`).
    Exec(health::ExecProbe),
    /// Healthy when an HTTP GET on a port of the container answers 2xx or 3xx
    /// (`builtin:http-probe`).
    Http(health::HttpProbe),
    /// No probes, always healthy: the fallback of a health plugin on a pool without `health:`.
    Pass,
}

impl HealthCheck for BuiltinHealth {
    fn plan<'a>(&'a self, c: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>> {
        let p = match self {
            Self::Exec(p) => p.plan(c),
            Self::Http(p) => p.plan(c),
            Self::Pass => Vec::new(),
        };
        ready(p).boxed()
    }
    fn judge<'a>(&'a self, c: &'a ContainerInfo, r: &'a [ProbeResult]) -> BoxFuture<'a, Verdict> {
        let v = match self {
            Self::Exec(p) => p.judge(c, r),
            Self::Http(p) => p.judge(c, r),
            Self::Pass => Verdict::Healthy,
        };
        ready(v).boxed()
    }
    fn name(&self) -> String {
        match self {
            Self::Exec(_) => "builtin:exec-probe".into(),
            Self::Http(_) => "builtin:http-probe".into(),
            Self::Pass => "builtin:pass".into(),
        }
    }
}

/// Bounds on what any policy returns, built-in or plugin: the core never takes a policy's word
/// for a size, a time or a length. A plugin host may report what it cut; the core only cuts.
pub mod bounds {
    use warmpool_policy::{ExhaustionAction, Probe, SizingDecision, Verdict};

    pub use crate::text::clip;

    /// Longest reason kept (a target's, a refusal's, a verdict's).
    pub const MAX_REASON: usize = 256;
    /// Probes one plan may run; the rest are dropped.
    pub const MAX_PROBES: usize = 16;
    /// Longest a probe may take.
    pub const MAX_PROBE_TIMEOUT_MS: u64 = 60_000;
    /// Longest `Retry-After` a refusal may ask for.
    pub const MAX_RETRY_AFTER_MS: u64 = 300_000;
    /// Arguments of an exec probe, and bytes per argument or HTTP path.
    pub const MAX_ARGS: usize = 64;
    /// Bytes kept of each exec-probe argument and of an HTTP probe's path.
    pub const MAX_ARG: usize = 4096;

    /// Cap a sizing target at `max_ready` and clip its reason.
    pub fn decision(d: SizingDecision, max_ready: u32) -> SizingDecision {
        SizingDecision {
            target: d.target.min(max_ready),
            reason: clip(&d.reason, MAX_REASON),
        }
    }

    /// Cap a refusal's retry hint at [`MAX_RETRY_AFTER_MS`] and clip its reason.
    pub fn action(a: ExhaustionAction) -> ExhaustionAction {
        match a {
            ExhaustionAction::Fail {
                retry_after_ms,
                reason,
            } => ExhaustionAction::Fail {
                retry_after_ms: retry_after_ms.min(MAX_RETRY_AFTER_MS),
                reason: clip(&reason, MAX_REASON),
            },
            other => other,
        }
    }

    /// Keep at most [`MAX_PROBES`] probes, clamp each timeout to 1..=[`MAX_PROBE_TIMEOUT_MS`] ms,
    /// and clip arguments and paths.
    pub fn probes(mut v: Vec<Probe>) -> Vec<Probe> {
        v.truncate(MAX_PROBES);
        let t = |ms: u64| ms.clamp(1, MAX_PROBE_TIMEOUT_MS);
        v.into_iter()
            .map(|p| match p {
                Probe::Exec {
                    mut argv,
                    timeout_ms,
                } => {
                    argv.truncate(MAX_ARGS);
                    Probe::Exec {
                        argv: argv.iter().map(|a| clip(a, MAX_ARG)).collect(),
                        timeout_ms: t(timeout_ms),
                    }
                }
                Probe::Http {
                    port,
                    path,
                    timeout_ms,
                } => Probe::Http {
                    port,
                    path: clip(&path, MAX_ARG),
                    timeout_ms: t(timeout_ms),
                },
                Probe::Tcp { port, timeout_ms } => Probe::Tcp {
                    port,
                    timeout_ms: t(timeout_ms),
                },
            })
            .collect()
    }

    /// Clip a verdict's reason to [`MAX_REASON`] bytes.
    pub fn verdict(v: Verdict) -> Verdict {
        match v {
            Verdict::Healthy => Verdict::Healthy,
            Verdict::Unhealthy { reason } => Verdict::Unhealthy {
                reason: clip(&reason, MAX_REASON),
            },
            Verdict::Recycle { reason } => Verdict::Recycle {
                reason: clip(&reason, MAX_REASON),
            },
        }
    }
}
