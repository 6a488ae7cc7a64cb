//! Keeping dead and unhealthy containers out of the pool: the periodic health probes (plan,
//! run, judge) and the engine's death notices. A dead ready container is removed the moment
//! the engine reports it, so it is never handed out.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tracing::warn;
use warmpool_policy::{ContainerInfo, Verdict};

use crate::backend::{Backend, BackendEvent};
use crate::manager::{Manager, lock};
use crate::pool::Pool;

/// Health probes run at once per pool: each is an exec (~75 ms on this engine).
const PROBE_CONCURRENCY: usize = 4;

impl<B: Backend> Manager<B> {
    pub(crate) async fn health_loop(self: Arc<Self>, pool: Arc<Pool>) {
        loop {
            tokio::select! {
                _ = pool.cancel.cancelled() => return,
                _ = sleep(pool.cfg().health_interval) => {}
            }
            if !self.engine_up() {
                continue;
            }
            tokio::select! {
                _ = pool.cancel.cancelled() => return,
                _ = self.health_pass(&pool) => {}
            }
        }
    }

    pub(crate) async fn health_pass(self: &Arc<Self>, pool: &Arc<Pool>) {
        let Some(check) = pool.policies().health.clone() else {
            return;
        };
        let now = Instant::now();
        let batch: Vec<ContainerInfo> = pool
            .lock()
            .ready
            .iter()
            .map(|c| ContainerInfo {
                id: c.created.id.clone(),
                pool: pool.cfg().name.clone(),
                age_ms: now.duration_since(c.ready_at).as_millis() as u64,
                uses: c.uses,
            })
            .collect();
        let verdicts: Vec<(String, Verdict)> = futures_util::stream::iter(batch)
            .map(|info| {
                let check = check.clone();
                async move {
                    let probes = check.plan(&info).await;
                    let mut results = Vec::with_capacity(probes.len());
                    for p in &probes {
                        results.push(self.backend.probe(&info.id, p).await);
                    }
                    let verdict = check.judge(&info, &results).await;
                    (info.id, verdict)
                }
            })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        // Probes fail wholesale when the engine drops mid-pass; judging then would empty the pool.
        if !self.engine_up() {
            return;
        }
        for (id, verdict) in verdicts {
            let reason = match verdict {
                Verdict::Healthy => continue,
                Verdict::Unhealthy { reason } | Verdict::Recycle { reason } => reason,
            };
            if self.retire_ready(pool, &id, true, "unhealthy") {
                warn!(pool = %pool.cfg().name, container = %id, %reason, "container unhealthy; replacing it");
            }
        }
    }

    pub(crate) async fn events_loop(self: Arc<Self>, mut rx: mpsc::Receiver<BackendEvent>) {
        loop {
            let ev = tokio::select! {
                _ = self.cancel.cancelled() => return,
                ev = rx.recv() => match ev { Some(ev) => ev, None => return },
            };
            match ev {
                BackendEvent::Died { id, reason } => self.on_died(&id, &reason),
            }
        }
    }

    pub(crate) fn on_died(self: &Arc<Self>, id: &str, reason: &str) {
        for pool in self.pools().values() {
            if self.retire_ready(pool, id, true, "died") {
                warn!(pool = %pool.cfg().name, container = %id, reason, "ready container died; replacing it");
                return;
            }
        }
        let mut leases = lock(&self.leases);
        if let Some(l) = leases.values_mut().find(|l| l.container.created.id == id) {
            warn!(lease = %l.id, container = %id, reason, "leased container died");
            self.emit(
                "unhealthy",
                &l.pool.cfg().name,
                Some(id),
                Some(&l.id),
                Some(reason.to_string()),
            );
            l.gone = Some(reason.to_string());
        }
    }
}
