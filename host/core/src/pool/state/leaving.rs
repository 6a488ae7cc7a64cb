//! Leaving the pool: lease ends, reuse resets, health and death, recycling and scale-down, and
//! the removals that end every container's life in the books.

use super::*;

impl PoolState {
    /// A lease ended (released, expired, shutdown): its container is removed.
    pub fn lease_ended(&mut self, key: &str, why: LeaseEnd) {
        self.moved(
            key,
            |s| matches!(s, Slot::Leased | Slot::Suspended),
            Slot::Removing { unhealthy: false },
        );
        if why == LeaseEnd::Expired {
            self.counters.expired_total += 1;
        }
        self.check();
    }

    /// A released container's reset begins.
    pub fn reset_begin(&mut self, key: &str) {
        self.moved(key, |s| s == Slot::Leased, Slot::Resetting);
        self.check();
    }

    /// The reset and every check passed: the container is ready again.
    pub fn reset_passed(&mut self, c: ReadyContainer) {
        self.moved(c.key(), |s| s == Slot::Resetting, Slot::Ready);
        self.counters.reused_total += 1;
        self.ready_push(c);
        self.serve_waiters();
        self.check();
    }

    /// The reset failed or left something behind: the container is removed.
    pub fn reset_failed(&mut self, key: &str) {
        self.moved(
            key,
            |s| s == Slot::Resetting,
            Slot::Removing { unhealthy: false },
        );
        self.counters.reset_failures += 1;
        self.check();
    }

    /// Take a ready container out of service (health, death): it is removed.
    pub fn pull_ready(&mut self, id: &str, unhealthy: bool) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| c.created.id == id)?;
        let c = self.ready.remove(pos)?;
        self.moved(c.key(), |s| s == Slot::Ready, Slot::Removing { unhealthy });
        if unhealthy {
            self.counters.unhealthy_total += 1;
        }
        self.check();
        Some(c)
    }

    /// A ready container that died young: remove it and count a failed create. Returns it when
    /// it was ready here. `young` says whether it died within probation.
    pub fn died(
        &mut self,
        id: &str,
        reason: &str,
        now: Instant,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
    ) -> Option<(ReadyContainer, bool)> {
        let young = self.ready.iter().any(|c| {
            c.created.id == id
                && c.uses == 0
                && now.saturating_duration_since(c.ready_at) < cfg.probation
        });
        let c = self.pull_ready(id, true)?;
        if young {
            self.counters.died_young += 1;
            let engine = c.engine;
            self.record_failure(
                engine,
                &format!("container died {reason} within probation"),
                breaker,
                now,
            );
        }
        Some((c, young))
    }

    /// Recycle the first ready container `worn` picks (age, lifetime, stale image or spec).
    pub fn recycle_one(
        &mut self,
        worn: impl Fn(&ReadyContainer, &Self) -> bool,
    ) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| worn(c, self))?;
        let c = self.ready.remove(pos)?;
        self.moved(
            c.key(),
            |s| s == Slot::Ready,
            Slot::Removing { unhealthy: false },
        );
        self.counters.recycled_total += 1;
        self.check();
        Some(c)
    }

    /// Above the target: remove the oldest ready container, one at a time. Only containers on
    /// engines that are up count, and only they are removed: those on a down engine cannot
    /// serve now, and removing a serving one for them would only make the refill replace it.
    pub fn scale_down_one(&mut self, cfg: &PoolConfig) -> Option<ReadyContainer> {
        let target = self.effective_target(cfg);
        if self.ready_up() <= target {
            return None;
        }
        let pos = self
            .ready
            .iter()
            .position(|c| has(self.up_mask, c.engine))?;
        let c = self.ready.remove(pos)?;
        self.moved(
            c.key(),
            |s| s == Slot::Ready,
            Slot::Removing { unhealthy: false },
        );
        self.check();
        Some(c)
    }

    /// Stop serving: fail queued acquires and take every ready container out. With
    /// `keep_unlendable`, ready containers no client could have had leave the books (they stay
    /// on the engine for the next start, and their cap slots are freed); the rest are removed.
    /// Returns (kept, doomed).
    pub fn drain(
        &mut self,
        keep_unlendable: bool,
        caps: &Caps,
    ) -> (Vec<ReadyContainer>, Vec<ReadyContainer>) {
        self.draining = true;
        for (_, w) in self.waiters.drain(..) {
            let _ = w.send(Err(DeliveryError::ShuttingDown));
        }
        let (kept, doomed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|c| keep_unlendable && !c.lendable);
        for c in &kept {
            if let Some(e) = self.books.remove(c.key()) {
                self.tally(e.slot, -1);
                caps.release_on(e.engine);
            }
        }
        for c in &doomed {
            self.moved(
                c.key(),
                |s| s == Slot::Ready,
                Slot::Removing { unhealthy: false },
            );
        }
        self.check();
        (kept, doomed)
    }

    /// The engine confirmed the container is gone: it leaves the books and frees its slot.
    pub fn removed(&mut self, key: &str, caps: &Caps) {
        match self.books.get(key).map(|e| (e.slot, e.engine)) {
            Some((slot @ Slot::Removing { .. }, engine)) => {
                self.books.remove(key);
                self.tally(slot, -1);
                self.counters.destroyed_total += 1;
                caps.release_on(engine);
            }
            other => {
                debug_assert!(false, "removed {key} while {other:?}");
                tracing::error!(container = key, state = ?other, "pool books: removal of a container not being removed");
            }
        }
        self.check();
    }

    /// A removal attempt failed; it is retried.
    pub fn remove_retried(&mut self) {
        self.counters.remove_retries += 1;
    }
}
