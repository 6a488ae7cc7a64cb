//! Creates: the refill's approvals under the caps, a create's outcome (into the pool, to a
//! queued acquire, or counted as failed), the breaker's back-off, and the policy's target.

use super::*;
use crate::text::clip;

impl PoolState {
    /// Set the policy's target (already clamped by the caller's sanitising) and its reason.
    /// Never above `max_ready`; while a scale override holds, never below its `min_ready`
    /// either: the override is the operator's (or an autoscaler's) floor, which a policy that
    /// goes below `min_ready` on purpose (a plugin that scales to zero) must not undo.
    pub fn set_target(&mut self, d: SizingDecision, cfg: &PoolConfig) {
        self.target = match self.scale(cfg) {
            Some(o) => d.target.clamp(o.min_ready, o.max_ready),
            None => d.target.min(cfg.max_ready),
        };
        self.target_reason = d.reason;
        self.check();
    }

    /// A reload changed the bounds: keep the target inside them until the policy decides again.
    /// An override set against other sizes can no longer hold, and goes (the reload clears it
    /// itself when told the sizes changed; this keeps the books true if it was not).
    pub fn clamp_target(&mut self, cfg: &PoolConfig) {
        if self
            .scale
            .is_some_and(|(_, against)| against != cfg.sizes())
        {
            self.scale = None;
        }
        let (min, max) = self.sizes(cfg);
        self.target = self.target.clamp(min, max.max(min));
    }

    /// Approve up to the deficit of creates, clamped to every cap, and count them as creating
    /// under the names `name()` gives, each on the engine the placer chose (see
    /// [`crate::engines::place`]; `views` has one entry per engine). A pool whose breaker is
    /// open gets one trial create at a time, and none while its last fresh container is still
    /// in probation, on each engine (see [`super::super::breakers`]); an engine backing off after
    /// a failure gets none until the back-off ends.
    pub fn approve_refill(
        &mut self,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
        caps: &Caps,
        views: &[EngineView],
        now: Instant,
        mut name: impl FnMut() -> String,
    ) -> Vec<(String, EngineIx)> {
        if self.draining {
            return Vec::new();
        }
        let target = self.effective_target(cfg);
        let have = self.ready_up() + (self.counts.creating - self.creating_cold);
        // Queued acquires that asked for certain engines, with nothing ready or coming there:
        // each gets a create placed on an engine it accepts, first, whatever the target.
        let needy = self.needy_waiters();
        let mut wanted = target.saturating_sub(have) + needy.len() as u32;
        wanted = wanted.min(cfg.max_total.saturating_sub(self.total()));
        let mut trials = self.trials(views.len(), now, cfg.probation);
        let mut on_engine = self.per_engine(views.len());
        let views = self.with_images(views);
        let mut approved = Vec::new();
        for i in 0..wanted as usize {
            let allow = needy.get(i).copied().unwrap_or(u64::MAX);
            let allowed: Vec<EngineView> = views
                .iter()
                .enumerate()
                .map(|(e, v)| EngineView {
                    eligible: v.eligible
                        && has(allow, e)
                        && self.breakers.admits(e, trials[e], breaker, now),
                    ..*v
                })
                .collect();
            let Some(e) = crate::engines::place(&allowed, &on_engine, caps) else {
                continue;
            };
            on_engine[e] += 1;
            trials[e] += 1;
            let n = name();
            self.insert(n.clone(), None, Slot::Creating { cold: false }, e);
            approved.push((n, e));
        }
        self.check();
        approved
    }

    /// The engine masks of queued acquires limited to some engines, where no container is
    /// ready or being created: the target alone would not make one there.
    fn needy_waiters(&self) -> Vec<u64> {
        self.waiters
            .iter()
            .filter(|(m, w)| *m != u64::MAX && !w.is_closed())
            .map(|(m, _)| *m)
            .filter(|&m| {
                let ready = self.ready.iter().any(|c| has(m & self.up_mask, c.engine));
                let coming = self
                    .books
                    .values()
                    .any(|e| matches!(e.slot, Slot::Creating { .. }) && has(m, e.engine));
                !ready && !coming
            })
            .collect()
    }

    /// `views` with what this pool knows of its image on each engine.
    fn with_images(&self, views: &[EngineView]) -> Vec<EngineView> {
        views
            .iter()
            .enumerate()
            .map(|(e, v)| EngineView {
                image_present: self.image_on(e),
                ..*v
            })
            .collect()
    }

    /// Approve one create for a specific acquire, placed among the engines `views` allows whose
    /// breaker for this pool is closed, if the caps allow it. Returns the engine.
    pub fn approve_cold(
        &mut self,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
        caps: &Caps,
        views: &[EngineView],
        name: String,
    ) -> Option<EngineIx> {
        if self.draining || self.total() >= cfg.max_total {
            return None;
        }
        let on_engine = self.per_engine(views.len());
        let views: Vec<EngineView> = self
            .with_images(views)
            .into_iter()
            .enumerate()
            .map(|(e, v)| EngineView {
                eligible: v.eligible && !self.breakers.is_open(e, breaker),
                ..v
            })
            .collect();
        let e = crate::engines::place(&views, &on_engine, caps)?;
        self.insert(name, None, Slot::Creating { cold: true }, e);
        self.check();
        Some(e)
    }

    /// A create that never reached the engine (shutdown came first): no container exists, so
    /// the entry leaves the books at once.
    pub fn abandon(&mut self, key: &str, caps: &Caps) {
        match self.books.get(key).map(|e| (e.slot, e.engine)) {
            Some((slot @ Slot::Creating { .. }, engine)) => {
                self.books.remove(key);
                self.tally(slot, -1);
                caps.release_on(engine);
            }
            other => debug_assert!(false, "abandoned {key} while {other:?}"),
        }
        self.check();
    }

    /// A create answered with a running container. A refill's goes to the first live waiter if
    /// it is lendable, else into the ready queue (returns `true` when a waiter took it). A cold
    /// create's is counted as leased: the caller delivers it, or gives it back.
    pub fn created(&mut self, c: ReadyContainer, ms: u32) -> Placed {
        let key = c.key().to_string();
        let cold = matches!(
            self.books.get(&key).map(|e| e.slot),
            Some(Slot::Creating { cold: true })
        );
        if let Some(e) = self.books.get_mut(&key) {
            e.id = Some(c.created.id.clone());
        }
        self.counters.creates_total += 1;
        self.breakers.created(c.engine);
        if self.recent_creates_ms.len() == RECENT_CREATES {
            self.recent_creates_ms.pop_front();
        }
        self.recent_creates_ms.push_back(ms);
        let placed = if cold {
            self.moved(
                &key,
                |s| matches!(s, Slot::Creating { cold: true }),
                Slot::Leased,
            );
            Placed::Cold(c)
        } else {
            self.moved(
                &key,
                |s| matches!(s, Slot::Creating { cold: false }),
                Slot::Ready,
            );
            self.ready_push(c);
            self.serve_waiters();
            Placed::Pooled
        };
        self.check();
        placed
    }

    /// A create failed or its answer never came: the engine may still hold a container by that
    /// name, so it stays counted, as removing, until a removal of the name succeeds. `blame`
    /// says whether the failure counts against the engine's breaker for this pool, or is an
    /// outage (the engine's monitor reports it). `engine` is where the create was sent.
    /// Returns that engine's failures in a row.
    pub fn create_failed(
        &mut self,
        key: &str,
        engine: EngineIx,
        err: &BackendError,
        blame: bool,
        breaker: &BreakerConfig,
        now: Instant,
    ) -> u32 {
        self.moved(
            key,
            |s| matches!(s, Slot::Creating { .. }),
            Slot::Removing { unhealthy: false },
        );
        if blame {
            self.record_failure(engine, &err.to_string(), breaker, now);
        } else {
            // An outage is not a failure of the create: back off without tripping the breaker.
            self.breakers.unreachable(engine, breaker, now);
        }
        self.check();
        self.breakers.failures_on(engine)
    }

    /// Count a failed create on engine `e` (or a container that died young there): back off
    /// there, and open that engine's breaker after `threshold` in a row.
    pub fn record_failure(
        &mut self,
        e: EngineIx,
        reason: &str,
        breaker: &BreakerConfig,
        now: Instant,
    ) {
        self.breakers.failed(e, breaker, now);
        self.counters.create_failures += 1;
        self.last_error = Some(clip(reason, MAX_ERROR));
    }

    /// Add detail (an exit report) to the last error, when it is still about `about`.
    pub fn detail_last_error(&mut self, about: &str, detail: &str) {
        if let Some(e) = &mut self.last_error
            && e.contains(about)
        {
            *e = clip(&format!("{e}: {detail}"), MAX_ERROR);
        }
    }

    /// A fresh container survived probation while ready (or a client took one): creates work
    /// again on its engine, so that engine's failure streak ends.
    pub fn probation_tick(&mut self, now: Instant, probation: Duration) {
        let Self {
            ready, breakers, ..
        } = self;
        for c in ready.iter() {
            if c.uses == 0 && now.saturating_duration_since(c.ready_at) >= probation {
                breakers.closed(c.engine, c.ready_at);
            }
        }
    }
}
