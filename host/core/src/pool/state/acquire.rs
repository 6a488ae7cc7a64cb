//! Acquire: the ready queue, the warm take (one critical section), waiters and deliveries,
//! and the lendable set the group commit promotes.

use super::*;

impl PoolState {
    pub(super) fn ready_push(&mut self, c: ReadyContainer) {
        self.ready.push_back(c);
    }

    /// Hand lendable ready containers on engines that are up to live waiters, oldest waiter
    /// first, each the oldest container its engines allow. Returns how many went.
    pub(super) fn serve_waiters(&mut self) -> u32 {
        let mut served = 0;
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].1.is_closed() {
                self.waiters.remove(i);
                continue;
            }
            let mask = self.waiters[i].0 & self.up_mask;
            let Some(pos) = self
                .ready
                .iter()
                .position(|c| c.lendable && has(mask, c.engine))
            else {
                i += 1;
                continue;
            };
            let c = self.ready.remove(pos).expect("position is valid");
            let key = c.key().to_string();
            self.moved(&key, |s| s == Slot::Ready, Slot::Leased);
            let (_, w) = self.waiters.remove(i).expect("index is valid");
            match w.send(Ok(c)) {
                Ok(()) => served += 1,
                Err(Ok(back)) => {
                    // The waiter had gone: the container stays ready, in its place.
                    self.moved(&key, |s| s == Slot::Leased, Slot::Ready);
                    self.ready.insert(pos, back);
                }
                Err(Err(_)) => unreachable!("we sent Ok"),
            }
        }
        served
    }

    /// The warm path: take the oldest lendable ready container on an engine of `mask` that is
    /// up (counted as leased) and record the acquire, in one critical section. Promotion keeps
    /// the lendable ones at the front, so this is a `pop_front` in practice.
    pub fn take_ready(
        &mut self,
        mask: u64,
        started: Instant,
        now: Instant,
    ) -> Option<ReadyContainer> {
        let mask = mask & self.up_mask;
        let pos = self
            .ready
            .iter()
            .position(|c| c.lendable && has(mask, c.engine))?;
        let c = self.ready.remove(pos)?;
        self.moved(c.key(), |s| s == Slot::Ready, Slot::Leased);
        self.record_acquire(started, now, AcquireSource::Pool);
        if c.uses == 0 {
            self.breakers.closed(c.engine, c.ready_at);
        }
        self.check();
        Some(c)
    }

    /// Record an acquire served by a delivery (a waiter, a cold create).
    pub fn record_acquire(&mut self, started: Instant, now: Instant, source: AcquireSource) {
        let micros = now
            .saturating_duration_since(started)
            .as_micros()
            .min(u128::from(u32::MAX)) as u32;
        self.last_acquire = Some(now);
        if self.recent_acquires.len() == RECENT_ACQUIRES {
            self.recent_acquires.pop_front();
        }
        self.recent_acquires.push_back((now, source));
        self.counters.acquires_total += 1;
        match source {
            AcquireSource::Pool => self.counters.acquires_pool += 1,
            AcquireSource::Cold => self.counters.acquires_cold += 1,
        }
        self.latency.push(micros);
    }

    /// An acquire was refused (exhausted, degraded, create failed).
    pub fn reject(&mut self) {
        self.counters.acquires_rejected += 1;
    }

    /// Queue an acquire for the next lendable container on an engine of `mask`.
    pub fn enqueue(&mut self, mask: u64, tx: oneshot::Sender<Delivery>) {
        self.waiters.push_back((mask, tx));
    }

    /// A leased container nobody took after all (a delivery bounced, a waiter gave up after it
    /// was sent one): back to a waiter or the ready queue.
    pub fn give_back(&mut self, c: ReadyContainer) {
        let key = c.key().to_string();
        self.moved(&key, |s| s == Slot::Leased, Slot::Ready);
        self.ready.push_front(c);
        self.serve_waiters();
        self.check();
    }

    /// After a commit: mark `ids` lendable and hand lendable containers to queued acquires.
    pub fn promote(&mut self, ids: &[String]) {
        for c in self.ready.iter_mut() {
            if ids.contains(&c.created.id) {
                c.lendable = true;
            }
        }
        // Keep lendable containers at the front, oldest first, so `take_ready` pops them.
        self.ready.make_contiguous().sort_by_key(|c| !c.lendable);
        self.serve_waiters();
        self.check();
    }

    /// How many lendable containers to keep ahead of the next commit: the decaying peak of the
    /// acquires seen within `window`, the queued acquires, and `floor`.
    pub fn lend_ahead(
        &mut self,
        window: Duration,
        decay: f64,
        floor: usize,
        now: Instant,
    ) -> usize {
        let burst = self
            .recent_acquires
            .iter()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) <= window)
            .count() as f64;
        self.lend_peak = (self.lend_peak * decay).max(burst);
        floor
            .max(self.lend_peak.ceil() as usize)
            .max(self.waiters.len() * 2)
    }
}
