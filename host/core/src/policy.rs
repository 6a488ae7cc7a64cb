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
    fn decide<'a>(&'a self, snapshot: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision>;
    /// A short name for stats and logs.
    fn name(&self) -> String;
}

/// Decides what an acquire does when no container is ready.
pub trait ExhaustionStrategy: Send + Sync {
    fn on_exhausted<'a>(
        &'a self,
        request: &'a ExhaustionRequest,
        snapshot: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction>;
    fn name(&self) -> String;
}

/// Decides whether a ready container is fit to hand out.
pub trait HealthCheck: Send + Sync {
    fn plan<'a>(&'a self, info: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>>;
    fn judge<'a>(
        &'a self,
        info: &'a ContainerInfo,
        results: &'a [ProbeResult],
    ) -> BoxFuture<'a, Verdict>;
    fn name(&self) -> String;
}

/// The three policies of one pool.
#[derive(Clone)]
pub struct Policies {
    pub sizing: Arc<dyn SizingPolicy>,
    pub exhaustion: Arc<dyn ExhaustionStrategy>,
    /// `None`: no periodic probing (dead containers are still caught by engine events).
    pub health: Option<Arc<dyn HealthCheck>>,
}

/// Built-in sizing policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinSizing {
    Fixed,
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
    Wait,
    Fail,
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
    Exec(health::ExecProbe),
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
