//! Scale overrides in the simulation: clients set and clear them (some out of bounds, some
//! while the store fails), reloads and restarts clear or keep them, and after every step the
//! promises hold:
//!
//! - the target respects the override: between its `min_ready` and `max_ready` (and the
//!   override inside the pool's `max_total`); without one, at most the config's `max_ready`;
//! - the daemon holds the override the clients were told it holds: what a `PUT` answered,
//!   until a `DELETE`, a reload that changed the pool's sizes or removed it, or a restart
//!   without the store (none, or lost); with the store, every acknowledged override is in it at
//!   a crash, and comes back (see [`Sim::scales_across_restart`]);
//! - a refusal is right: out of bounds only when the request is, by the sim's own reckoning;
//!   a store error only while the store fails.

use warmpool_core::{ScaleError, ScaleOverride};

use super::Failure;
use super::exercise::Count;
use super::world::Sim;

impl Sim {
    /// A client sets (most often) or clears a pool's override.
    pub(crate) async fn scale(&mut self) {
        let pool = {
            let i = self.rng.usize(0..self.pools.len());
            self.pools[i].0.clone()
        };
        let name = pool.name.clone();
        if self.rng.u32(0..10) < 3 {
            self.note(format!("scale {name}: clear"));
            match self.manager.unscale(&name).await {
                Ok(stats) => {
                    if self.scales.remove(&name).is_some() {
                        self.ex.add(Count::ScaleClears, 1);
                    }
                    if stats.scale_override.is_some() {
                        let v = format!("pool {name} still has an override after DELETE");
                        self.model().violations.push(v);
                    }
                }
                Err(e) => self.scale_refused(&name, &e, None),
            }
            return;
        }
        // Mostly within bounds; now and then a floor past the caps or a ceiling past max_total.
        let min = self.rng.bool().then(|| self.rng.u32(0..=4));
        let max = (min.is_none() || self.rng.bool()).then(|| match self.rng.u32(0..8) {
            0 => 0,
            1 => pool.max_total + 1,
            _ => {
                let lo = min.unwrap_or(0).max(1);
                self.rng.u32(lo..=pool.max_total.max(lo))
            }
        });
        self.note(format!("scale {name}: min_ready {min:?} max_ready {max:?}"));
        let want = (min.unwrap_or(pool.min_ready), max.unwrap_or(pool.max_ready));
        let asked = (min.map(u64::from), max.map(u64::from));
        match self.manager.scale(&name, asked.0, asked.1).await {
            Ok(stats) => {
                let got = stats.scale_override;
                let expected = ScaleOverride {
                    min_ready: want.0,
                    max_ready: want.1,
                };
                if got != Some(expected) || !self.within_bounds(&name, want) {
                    let v = format!(
                        "scale {name} {min:?}/{max:?} answered {got:?}, expected {expected:?} within the bounds"
                    );
                    self.model().violations.push(v);
                }
                self.scales.insert(name, expected);
                self.ex.add(Count::ScaleSets, 1);
            }
            Err(e) => self.scale_refused(&name, &e, Some(want)),
        }
    }

    /// Whether `(min, max)` on pool `name` is within every bound, as the daemon must judge it.
    fn within_bounds(&self, name: &str, (min, max): (u32, u32)) -> bool {
        let Some((cfg, _)) = self.pools.iter().find(|(p, _)| p.name == name) else {
            return false;
        };
        let others: u32 = self
            .pools
            .iter()
            .filter(|(p, _)| p.name != name)
            .map(|(p, _)| {
                self.scales
                    .get(&p.name)
                    .map_or(p.min_ready, |o| o.min_ready)
            })
            .sum();
        min <= max && max >= 1 && max <= cfg.max_total && others + min <= self.capacity()
    }

    /// The containers the caps let exist at once (`Caps::capacity`).
    fn capacity(&self) -> u32 {
        let engines = self.engine_specs.iter().fold(0u32, |sum, e| {
            sum.saturating_add(e.max_containers.unwrap_or(u32::MAX))
        });
        self.mcfg.max_containers.min(engines)
    }

    /// A refused request changed nothing; the refusal must be one the request earned.
    fn scale_refused(&mut self, name: &str, e: &ScaleError, want: Option<(u32, u32)>) {
        let fair = match e {
            ScaleError::OutOfBounds { .. } => {
                self.ex.add(Count::ScaleRefused, 1);
                want.is_some_and(|w| !self.within_bounds(name, w))
            }
            ScaleError::Store(_) => self.store.fail.load(std::sync::atomic::Ordering::Acquire),
            // Asked only of a configured pool, once reconciled (the restore done), between
            // restarts and reloads: none of these may happen.
            ScaleError::NotReady
            | ScaleError::UnknownPool(_)
            | ScaleError::ShuttingDown
            | ScaleError::Conflict(_) => false,
        };
        self.note(format!("scale {name}: refused: {e}"));
        if !fair {
            let v = format!("scale {name} {want:?} was refused unfairly: {e}");
            self.model().violations.push(v);
        }
    }

    /// A reload changed pool `name`'s sizes, or removed it: its override is gone.
    pub(crate) fn scale_cleared_by_reload(&mut self, name: &str) {
        if self.scales.remove(name).is_some() {
            self.ex.add(Count::ScaleReloadCleared, 1);
        }
    }

    /// A daemon stopped (crash or SIGTERM), its store kept or not. With the store, every
    /// override a client was told of must be in it, as told (durable before the answer); the
    /// next daemon puts back what the store holds for a pool that still has the sizes it was
    /// set against. (A store that failed may still hold one a reload cleared since: it comes
    /// back, as a lease change the store never got is lost; what was acknowledged never is.)
    pub(crate) fn scales_across_restart(&mut self, store_kept: bool) {
        if !(self.persist && store_kept) {
            self.scales.clear();
            self.scale_restore_due = false;
            return;
        }
        let stored = self.store.snapshot().scales;
        for (name, o) in &self.scales {
            let durable = stored
                .get(name)
                .is_some_and(|r| (r.min_ready, r.max_ready) == (o.min_ready, o.max_ready));
            if !durable {
                let v = format!(
                    "pool {name}'s override {o:?} was acknowledged but the store holds {:?}",
                    stored.get(name)
                );
                self.model().violations.push(v);
            }
        }
        self.scales = stored
            .values()
            .filter(|r| {
                self.pools
                    .iter()
                    .any(|(p, _)| p.name == r.pool && p.sizes() == r.config_sizes)
            })
            .map(|r| {
                (
                    r.pool.clone(),
                    ScaleOverride {
                        min_ready: r.min_ready,
                        max_ready: r.max_ready,
                    },
                )
            })
            .collect();
        self.scale_restore_due = !self.scales.is_empty();
    }

    /// The promises of the module doc, on every serving pool.
    pub(crate) fn check_scales(&mut self) -> Result<(), Failure> {
        let reconciled = self.manager.reconciled();
        for s in self.manager.all_pool_stats() {
            let outside = match s.scale_override {
                Some(o) => {
                    !(o.min_ready..=o.max_ready).contains(&s.target) || o.max_ready > s.max_total
                }
                None => s.target > s.max_ready,
            };
            if outside {
                return Err(self.fail(format!(
                    "pool {}: target {} outside its bounds: override {:?}, max_ready {}, max_total {}",
                    s.name, s.target, s.scale_override, s.max_ready, s.max_total
                )));
            }
            // The stored overrides are back once the new daemon reconciled.
            if reconciled && s.scale_override != self.scales.get(&s.name).copied() {
                return Err(self.fail(format!(
                    "pool {} has override {:?}, its clients were told {:?}",
                    s.name,
                    s.scale_override,
                    self.scales.get(&s.name)
                )));
            }
        }
        if reconciled && self.scale_restore_due {
            self.scale_restore_due = false;
            self.ex.add(Count::ScaleRestored, self.scales.len() as u64);
        }
        Ok(())
    }
}
