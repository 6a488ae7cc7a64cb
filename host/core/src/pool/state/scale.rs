//! The scale override: sizes set at run time in place of the config's `min_ready` and
//! `max_ready`. Every reader of the pool's bounds asks [`PoolState::sizes`], so the refill's
//! target, the policy's snapshot, the idle scale-down and warm-up all follow it.
//!
//! An override remembers the config's sizes it was set against: it applies only while the
//! pool's config still has them. A reload that changes them clears it (`Pool::reconfigure`);
//! the check here also keeps an override that raced such a reload from ever taking effect.

use super::*;
use crate::config::ScaleOverride;

impl PoolState {
    /// The override, when one is set and the config it was set against is still `cfg`'s.
    pub fn scale(&self, cfg: &PoolConfig) -> Option<ScaleOverride> {
        self.scale
            .filter(|(_, against)| *against == cfg.sizes())
            .map(|(o, _)| o)
    }

    /// `(min_ready, max_ready)` the pool runs on: the override's, else the config's.
    pub fn sizes(&self, cfg: &PoolConfig) -> (u32, u32) {
        self.scale(cfg).map_or((cfg.min_ready, cfg.max_ready), |o| {
            (o.min_ready, o.max_ready)
        })
    }

    /// Set the override (the caller checked it against the pool's and the daemon's bounds),
    /// and bring the target inside it at once: the refill acts on it without waiting for the
    /// policy's next answer.
    pub fn set_scale(&mut self, o: ScaleOverride, cfg: &PoolConfig) {
        debug_assert!(
            o.min_ready <= o.max_ready && o.max_ready >= 1 && o.max_ready <= cfg.max_total,
            "scale override {o:?} outside the pool's bounds {:?}",
            cfg.sizes()
        );
        self.scale = Some((o, cfg.sizes()));
        self.target = self.target.clamp(o.min_ready, o.max_ready);
        self.target_reason = format!(
            "scale override: min_ready={} max_ready={}",
            o.min_ready, o.max_ready
        );
        self.check();
    }

    /// Clear the override (if any); the target goes back inside the config's bounds. Returns
    /// the override that applied.
    pub fn clear_scale(&mut self, cfg: &PoolConfig) -> Option<ScaleOverride> {
        let was = self.scale(cfg);
        self.scale = None;
        self.clamp_target(cfg);
        if was.is_some() {
            self.target_reason = "scale override cleared".into();
        }
        self.check();
        was
    }

    /// The override's invariant, for `check`: its bounds are in order and inside the pool's
    /// `max_total` it was set against, and the target is between them.
    pub(super) fn check_scale(&self) {
        if let Some((o, [_, _, max_total])) = self.scale {
            assert!(
                o.min_ready <= o.max_ready && o.max_ready >= 1 && o.max_ready <= max_total,
                "scale override {o:?} outside its bounds (max_total {max_total})"
            );
            assert!(
                (o.min_ready..=o.max_ready).contains(&self.target),
                "target {} outside the scale override {o:?}",
                self.target
            );
        }
    }
}
