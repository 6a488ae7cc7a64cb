//! A lease's own cpus and memory in the simulation: pools with and without `resources:`
//! bounds, acquires that ask (within the bounds, outside them, from a pool without them),
//! `PATCH`es of live leases, and updates that fail (the fake's `fail_update`). The hand-out
//! check (`handout.rs`) holds each container to the limits its lease should have: the ask, or
//! the pool's, which a reuse of a resized container must have put back.
//!
//! Every choice here comes from a generator of its own (`Sim::rres`), so the main stream, and
//! with it the regression seeds, draws as it did before these were added.

use warmpool_core::{PoolConfig, ResizeError, ResourceBounds, ResourceError, Resources};

use super::handout::ended_during_call;
use super::world::Sim;

/// The pool's own limits (every simulated pool has them, so that a reuse has some to put
/// back), and for most pools the bounds a lease may ask within.
pub(crate) fn limits(rres: &mut fastrand::Rng, p: &mut PoolConfig) {
    p.spec.nano_cpus = Some(1_000_000_000);
    p.spec.memory = Some(64 << 20);
    p.resources = (rres.f64() < 0.7).then(|| ResourceBounds {
        max_nano_cpus: rres.bool().then_some(4_000_000_000),
        max_memory: Some(256 << 20),
    });
}

/// What a client asks: mostly within the bounds, sometimes beyond or below them.
pub(crate) fn ask(rres: &mut fastrand::Rng) -> Resources {
    let cpus = [
        None,
        Some(500_000_000),
        Some(2_000_000_000),
        Some(8_000_000_000),
        Some(1),
    ];
    let memory = [
        None,
        Some(32 << 20),
        Some(128 << 20),
        Some(1 << 30),
        Some(1 << 10),
    ];
    let mut r = Resources::default();
    while r.is_empty() {
        r = Resources {
            nano_cpus: cpus[rres.usize(0..cpus.len())],
            memory: memory[rres.usize(0..memory.len())],
        };
    }
    r
}

/// Whether `e` is the refusal `ask` deserves from a pool with `bounds`: the check is written
/// out here, not through the core's own, so a core that refused the wrong asks would show.
pub(crate) fn rightly_refused(
    bounds: Option<&ResourceBounds>,
    ask: &Resources,
    e: &ResourceError,
) -> bool {
    let Some(b) = bounds else {
        return matches!(e, ResourceError::NotAllowed { .. });
    };
    let over = |v: Option<i64>, max: Option<i64>, floor: i64| {
        v.is_some_and(|v| max.is_none_or(|m| v > m) || v < floor)
    };
    match e {
        ResourceError::NotAllowed { .. } => false,
        ResourceError::OutOfBounds { bound, .. } => match *bound {
            "resources.max_cpus" | "min_cpus" => {
                over(ask.nano_cpus, b.max_nano_cpus, warmpool_core::MIN_NANO_CPUS)
            }
            "resources.max_memory" | "min_memory" => {
                over(ask.memory, b.max_memory, warmpool_core::MIN_MEMORY)
            }
            _ => false,
        },
    }
}

impl Sim {
    /// A client changes a held lease's cpus or memory (`PATCH`), now and then.
    pub(crate) fn maybe_resize(&mut self) {
        if self.rres.f64() >= 0.4 {
            return;
        }
        let ids: Vec<String> = self.model().held.keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rres.usize(0..ids.len())].clone();
        let ask = ask(&mut self.rres);
        let bounds = self
            .manager
            .lease(&id)
            .ok()
            .and_then(|l| self.pools.iter().find(|(p, _)| p.name == l.pool))
            .map(|(p, _)| p.resources);
        self.note(format!("resize {id} to {ask:?}"));
        let (m, model) = (self.manager.clone(), self.model.clone());
        tokio::spawn(async move {
            let r = m.resize(&id, &ask).await;
            match r {
                Ok(info) => {
                    let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
                    model.resizes += 1;
                    let shown = info.resources;
                    let cpus_ok = ask
                        .nano_cpus
                        .is_none_or(|n| shown.cpus == Some(n as f64 / 1e9));
                    if !cpus_ok || ask.memory.is_some_and(|m| shown.memory != Some(m)) {
                        model.violations.push(format!(
                            "resize of lease {id} to {ask:?} answered {shown:?}"
                        ));
                    }
                }
                Err(ResizeError::Resources(e)) => {
                    let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
                    model.resize_refused += 1;
                    // Bounds as the pool had them when the client asked (a reload may have
                    // changed them since; then the refusal is not judged).
                    if let Some(b) = bounds
                        && !rightly_refused(b.as_ref(), &ask, &e)
                    {
                        model.violations.push(format!(
                            "resize of lease {id} to {ask:?} under bounds {b:?} refused: {e}"
                        ));
                    }
                }
                Err(ResizeError::Lease(e)) => ended_during_call(&m, &model, &id, "resize", Some(e)),
            }
        });
    }

    /// Now and then, updates of limits start or stop failing on engine `which`.
    pub(crate) fn maybe_fail_updates(&mut self, which: usize) {
        if self.rres.f64() >= 0.3 {
            return;
        }
        let p = [0.0, 0.1, 0.5, 1.0][self.rres.usize(0..4)];
        self.engines[which].state().faults.fail_update = p;
        self.note(format!("updates of limits fail {p} (engine {which})"));
    }
}
