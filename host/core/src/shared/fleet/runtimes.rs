//! The OCI runtimes each engine registered, as the fleet knows them: where a pool that names
//! one may be placed, and why none can take it.

use super::{Engine, Fleet};
use crate::backend::Runtimes;
use crate::caps::EngineIx;
use crate::engines::bit;
use crate::sync::lock;

impl<B> Fleet<B> {
    /// Engine `e` says it has these runtimes. Whether that changed what is known of it.
    pub fn set_runtimes(&self, e: EngineIx, r: Runtimes) -> bool {
        let mut known = lock(&self.engine(e).runtimes);
        if known.as_ref() == Some(&r) {
            return false;
        }
        *known = Some(r);
        true
    }

    /// The engines a pool running `runtime` may be placed on, as a mask: every engine when it
    /// names none (the engine's default), else those known to have it registered (an engine
    /// whose runtimes were not read yet gets none of its containers).
    pub fn runtime_mask(&self, runtime: Option<&str>) -> u64 {
        let Some(want) = runtime else {
            return u64::MAX;
        };
        self.engines
            .iter()
            .enumerate()
            .filter(|(_, e)| lock(&e.runtimes).as_ref().is_some_and(|r| r.has(want)))
            .fold(0, |m, (i, _)| m | bit(i))
    }

    /// Why no engine of `mask` that is up can run a container of runtime `runtime`, once that
    /// is known: some engine of `mask` is up, every one that is has said which runtimes it
    /// has, and none listed it. `None` while it may still come (or the pool names none).
    pub fn runtime_missing(&self, runtime: Option<&str>, mask: u64) -> Option<String> {
        let want = runtime?;
        let up: Vec<(usize, &Engine<B>)> = self
            .engines
            .iter()
            .enumerate()
            .filter(|(i, e)| e.is_up() && mask & bit(*i) != 0)
            .collect();
        if up.is_empty() {
            return None;
        }
        let mut have = Vec::new();
        for (_, e) in &up {
            match lock(&e.runtimes).as_ref() {
                None => return None,
                Some(r) if r.has(want) => return None,
                Some(r) => have.push(format!("{}: {}", e.spec.name, r.names.join(", "))),
            }
        }
        Some(format!(
            "no engine that is up has the OCI runtime {want:?} registered (engines' runtimes: {})",
            have.join("; ")
        ))
    }
}
