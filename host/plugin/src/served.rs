//! The core's policy traits, answered by a pool's plugin slot with the built-in as fallback:
//! each method hands `PluginSlot::serve` the plugin call and the built-in's answer.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use warmpool_core::policy_logic::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, Probe, ProbeResult,
    SizingDecision, Verdict,
};
use warmpool_core::{ExhaustionStrategy, HealthCheck, SizingPolicy};

use crate::slot::{PluginSlot, check_sizing};

/// A pool's sizing policy served by a plugin, with the built-in as fallback.
pub struct WasmSizing {
    /// The slot holding the pool's sizing plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in policy, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn SizingPolicy>,
}

impl SizingPolicy for WasmSizing {
    fn decide<'a>(&'a self, s: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        let snap = s.clone();
        self.slot
            .serve(
                move |l, slot| {
                    async move { check_sizing(&snap, l.decide(&snap, &slot.cut).await?) }.boxed()
                },
                || self.fallback.decide(s),
            )
            .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}

/// A pool's exhaustion strategy served by a plugin, with the built-in as fallback.
pub struct WasmExhaustion {
    /// The slot holding the pool's exhaustion plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in strategy, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn ExhaustionStrategy>,
}

impl ExhaustionStrategy for WasmExhaustion {
    fn on_exhausted<'a>(
        &'a self,
        r: &'a ExhaustionRequest,
        s: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        let (req, snap) = (r.clone(), s.clone());
        self.slot
            .serve(
                move |l, slot| async move { l.on_exhausted(&req, &snap, &slot.cut).await }.boxed(),
                || self.fallback.on_exhausted(r, s),
            )
            .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}

/// A pool's health check served by a plugin, with the built-in as fallback.
pub struct WasmHealth {
    /// The slot holding the pool's health plugin.
    pub slot: Arc<PluginSlot>,
    /// The built-in check, used when the plugin is missing, benched or its call fails.
    pub fallback: Arc<dyn HealthCheck>,
}

impl HealthCheck for WasmHealth {
    fn plan<'a>(&'a self, c: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>> {
        let info = c.clone();
        self.slot
            .serve(
                move |l, slot| async move { l.plan(&info, &slot.cut).await }.boxed(),
                || self.fallback.plan(c),
            )
            .boxed()
    }
    fn judge<'a>(&'a self, c: &'a ContainerInfo, r: &'a [ProbeResult]) -> BoxFuture<'a, Verdict> {
        let (info, results) = (c.clone(), r.to_vec());
        self.slot
            .serve(
                move |l, slot| async move { l.judge(&info, &results, &slot.cut).await }.boxed(),
                || self.fallback.judge(c, r),
            )
            .boxed()
    }
    fn name(&self) -> String {
        self.slot.label(&self.fallback.name())
    }
}
