//! Lease hibernation in the simulation: suspend and resume steps (run as tasks, so they overlap
//! with every other step, a release or a restart included), idle suspends (some pools have
//! `suspend_after_idle`), and the faults of the fake engine (`fail_hibernate`: before, after,
//! or midway with the memory lost; an engine without checkpoints; outages and hangs mid-call).
//!
//! The checks, after every step: a pool counts as suspended exactly its leases that are
//! suspended (or being resumed), so the caps count them; and a suspended lease's container is
//! still on its engine (never removed, never lent to another, which the exclusivity check
//! and the hand-out checks see).

use std::collections::BTreeMap;

use warmpool_core::LeaseError;

use super::Failure;
use super::exercise::Count;
use super::handout::ended_during_call;
use super::world::Sim;

impl Sim {
    pub(crate) fn spawn_suspend(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        self.note(format!("suspend {id} ({})", h.container));
        self.hib.asked.insert(id.clone());
        let (m, model, counts) = (
            self.manager.clone(),
            self.model.clone(),
            self.hib.counts.clone(),
        );
        tokio::spawn(async move {
            let r = m.suspend(&id).await;
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            match r {
                Ok(_) => c[0] += 1,
                Err(LeaseError::CannotSuspend { .. }) => c[2] += 1,
                Err(e) => {
                    drop(c);
                    ended_during_call(&m, &model, &id, "suspend", Some(e));
                }
            }
        });
    }

    pub(crate) fn spawn_resume(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        self.note(format!("resume {id} ({})", h.container));
        let (m, model, counts) = (
            self.manager.clone(),
            self.model.clone(),
            self.hib.counts.clone(),
        );
        tokio::spawn(async move {
            let was = m.lease(&id).map(|l| l.state).unwrap_or("unknown");
            let r = m.resume(&id).await;
            match r {
                Ok(_) if was == "suspended" => {
                    counts.lock().unwrap_or_else(|p| p.into_inner())[1] += 1;
                }
                Ok(_) => {}
                Err(e) => ended_during_call(&m, &model, &id, "resume", Some(e)),
            }
        });
    }

    /// Switch a hibernation fault on `w`: failures of suspend and resume, or no checkpoints.
    pub(crate) fn hibernation_fault(&mut self, w: &mut warmpool_fake::World) -> String {
        if self.rng.bool() {
            w.faults.fail_hibernate = [0.0, 0.1, 0.5, 1.0][self.rng.usize(0..4)];
            format!("suspends and resumes fail {}", w.faults.fail_hibernate)
        } else {
            w.no_checkpoint = match w.no_checkpoint {
                Some(_) => None,
                None => Some("the engine is not in experimental mode".into()),
            };
            format!("engine cannot checkpoint: {}", w.no_checkpoint.is_some())
        }
    }

    /// A daemon is about to stop (crash or restart): count the suspended leases it leaves.
    pub(crate) fn note_suspended_at_stop(&mut self) {
        let n = self
            .manager
            .leases()
            .iter()
            .filter(|l| l.state == "suspended")
            .count();
        self.ex.add(Count::SuspendedAtRestart, n as u64);
    }

    /// See the module doc.
    pub(crate) fn check_hibernation(&mut self) -> Result<(), Failure> {
        let leases = self.manager.leases();
        let mut per_pool: BTreeMap<String, u32> = BTreeMap::new();
        for l in &leases {
            if !matches!(l.state, "suspended" | "resuming") {
                continue;
            }
            *per_pool.entry(l.pool.clone()).or_default() += 1;
            let on_engine = self
                .engines
                .iter()
                .any(|e| e.state().containers.contains_key(&l.container_id));
            if !on_engine {
                return Err(self.fail(format!(
                    "suspended lease {} has no container {} on any engine",
                    l.lease_id, l.container_id
                )));
            }
            if l.state == "suspended" && !self.hib.asked.contains(&l.lease_id) {
                self.hib.idle.insert(l.lease_id.clone());
            }
        }
        for name in self.manager.pool_names() {
            let Some(s) = self.manager.pool_stats(&name) else {
                continue;
            };
            let want = per_pool.get(&name).copied().unwrap_or(0);
            if s.counts.suspended != want {
                return Err(self.fail(format!(
                    "pool {name} counts {} suspended containers, its leases {want} suspended",
                    s.counts.suspended
                )));
            }
        }
        Ok(())
    }

    /// The hibernation counts, for the end of the run.
    pub(crate) fn hibernation_exercise(&self) -> [(Count, u64); 4] {
        let c = *self.hib.counts.lock().unwrap_or_else(|p| p.into_inner());
        [
            (Count::Suspends, c[0]),
            (Count::Resumes, c[1]),
            (Count::SuspendRefused, c[2]),
            (Count::IdleSuspends, self.hib.idle.len() as u64),
        ]
    }
}
