//! Keeping unhealthy containers out of the pool: the periodic health probes (plan, run, judge).
//! The engine's death notices are in `deaths.rs`.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::{Instant, sleep};
use tracing::warn;
use warmpool_policy::{ContainerInfo, ProbeResult, Verdict};

use super::Upkeep;
use crate::backend::Backend;
use crate::caps::EngineIx;
use crate::engines::has;
use crate::lifecycle::CALL_SLACK;
use crate::policy::bounds;
use crate::pool::Pool;

/// Health probes run at once per pool: each is an exec (~75 ms on this engine).
const PROBE_CONCURRENCY: usize = 4;

impl<B: Backend> Upkeep<B> {
    pub(super) async fn health_loop(self, pool: Arc<Pool>) {
        loop {
            tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => return,
                _ = sleep(pool.cfg().health_interval) => {}
            }
            if !self.s.fleet.any_up() {
                continue;
            }
            tokio::select! {
                biased;
                _ = pool.cancel.cancelled() => return,
                _ = self.health_pass(&pool) => {}
            }
        }
    }

    async fn health_pass(&self, pool: &Arc<Pool>) {
        let Some(check) = pool.policies().health.clone() else {
            return;
        };
        let now = Instant::now();
        let name = pool.name();
        let up = self.s.fleet.up_mask();
        let batch: Vec<(ContainerInfo, EngineIx)> = pool
            .lock()
            .ready()
            .filter(|c| has(up, c.engine))
            .map(|c| {
                let info = ContainerInfo {
                    id: c.created.id.clone(),
                    pool: name.clone(),
                    age_ms: now.saturating_duration_since(c.ready_at).as_millis() as u64,
                    uses: c.uses,
                };
                (info, c.engine)
            })
            .collect();
        let verdicts: Vec<(String, EngineIx, Verdict)> = futures_util::stream::iter(batch)
            .map(|(info, engine)| {
                let check = check.clone();
                async move {
                    let probes = bounds::probes(check.plan(&info).await);
                    let mut results = Vec::with_capacity(probes.len());
                    for p in &probes {
                        let within = std::time::Duration::from_millis(p.timeout_ms()) + CALL_SLACK;
                        let r = tokio::time::timeout(
                            within,
                            self.s.fleet.backend(engine).probe(&info.id, p),
                        )
                        .await
                        .unwrap_or(ProbeResult::TimedOut);
                        results.push(r);
                    }
                    let verdict = bounds::verdict(check.judge(&info, &results).await);
                    (info.id, engine, verdict)
                }
            })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        // Probes fail wholesale when an engine drops mid-pass; judging its containers then
        // would empty the pool there.
        let up = self.s.fleet.up_mask();
        for (id, engine, verdict) in verdicts {
            if !has(up, engine) {
                continue;
            }
            let reason = match verdict {
                Verdict::Healthy => continue,
                Verdict::Unhealthy { reason } | Verdict::Recycle { reason } => reason,
            };
            if self.retire_ready(pool, &id, "unhealthy", reason.clone()) {
                warn!(pool = %name, container = %id, %reason, "container unhealthy; replacing it");
            }
        }
    }

    /// Take a ready container out of service (unhealthy) and remove it.
    fn retire_ready(&self, pool: &Arc<Pool>, id: &str, why: &'static str, reason: String) -> bool {
        let Some(c) = pool.lock().pull_ready(id, true) else {
            return false;
        };
        self.s.events.emit(
            "unhealthy",
            &pool.name(),
            Some((id, c.engine)),
            None,
            Some(reason),
        );
        self.life.spawn_removal_of(pool, &c, why);
        true
    }
}
