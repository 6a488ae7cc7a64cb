//! The engine's death notices. A dead ready container is taken out of the pool the moment the
//! daemon receives the engine's report, so it is never handed out after that; a leased one is
//! marked gone (its client gets 410), and so is one whose lease is opened after the report
//! arrived (`open_lease` looks at the recent deaths). A fresh container that dies within its
//! pool's probation counts as a failed create: it feeds the breaker, so a pool whose
//! containers cannot stay up backs off and reports `degraded` with the exit code and the last
//! lines of the container's log, instead of replacing them in a loop.
//!
//! Deaths of a container whose create is still answering are remembered (see
//! `Fleet::note_death`); an event the engine never delivered is made up for by the running
//! sweep (`sweep.rs`), which finds the container not running.

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, warn};

use super::Upkeep;
use crate::backend::{Backend, BackendEvent};
use crate::lifecycle::CALL_TIMEOUT;

impl<B: Backend> Upkeep<B> {
    pub(super) async fn events_loop(self, mut rx: mpsc::Receiver<BackendEvent>) {
        loop {
            let ev = tokio::select! {
                biased;
                _ = self.s.rt.cancel().cancelled() => return,
                ev = rx.recv() => match ev { Some(ev) => ev, None => return },
            };
            match ev {
                BackendEvent::Died { id, reason } => self.on_died(&id, &reason),
            }
        }
    }

    pub(super) fn on_died(&self, id: &str, reason: &str) {
        let s = &self.s;
        s.fleet.note_death(id);
        let now = Instant::now();
        let breaker = &s.rt.cfg().breaker;
        for pool in s.books.all() {
            let cfg = pool.cfg();
            let (hit, failures) = {
                let mut st = pool.lock();
                let hit = st.died(id, reason, now, &cfg, breaker);
                let failures = hit.as_ref().map_or(0, |(c, _)| st.failures_on(c.engine));
                (hit, failures)
            };
            let Some((c, young)) = hit else { continue };
            warn!(pool = %cfg.name, container = %c.key(), reason, young, "ready container died; replacing it");
            s.events.emit(
                "unhealthy",
                &cfg.name,
                Some((id, c.engine)),
                None,
                Some(format!("died: {reason}")),
            );
            if young {
                if failures == breaker.threshold {
                    s.events.emit_breaker(
                        &cfg.name,
                        c.engine,
                        format!("open after {failures} failures: containers die young ({reason})"),
                    );
                    error!(pool = %cfg.name, engine = s.fleet.name(c.engine), "create breaker open: containers die within probation");
                }
                // Say why in the pool's last error: the exit code and the log's last lines.
                let (s2, pool2, id2, e) = (s.clone(), pool.clone(), id.to_string(), c.engine);
                s.rt.tracker().spawn(async move {
                    let report =
                        tokio::time::timeout(CALL_TIMEOUT, s2.fleet.backend(e).exit_report(&id2))
                            .await
                            .unwrap_or_default();
                    if !report.is_empty() {
                        pool2.lock().detail_last_error("within probation", &report);
                    }
                });
            }
            self.life.spawn_removal_of(&pool, &c, "died");
            pool.touch();
            return;
        }
        // A suspend stops the container on purpose (the engine reports that as a death), and a
        // resume settles the lease itself from what the engine says: only a running lease's
        // container can die.
        let found = s
            .leases
            .with_container(id, |l| {
                (l.hib == crate::lease::Hib::Running).then(|| {
                    l.gone = Some(reason.to_string());
                    (
                        l.id.clone(),
                        l.tenant.clone(),
                        l.pool.name(),
                        l.container.engine,
                    )
                })
            })
            .flatten();
        if let Some((lease, tenant, pool, engine)) = found {
            warn!(%lease, container = %id, reason, "leased container died");
            s.events.emit(
                "unhealthy",
                &pool,
                Some((id, engine)),
                Some(crate::events::LeaseTag {
                    id: &lease,
                    tenant: tenant.as_deref(),
                }),
                Some(reason.to_string()),
            );
        }
    }
}
