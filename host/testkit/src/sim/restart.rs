//! Restarts of the simulated daemon and what may change across them: `kill -9` (with the
//! store's file lost now and then, or unreadable for a while), SIGTERM, and a new image or
//! spec the next daemon starts with; and the agent deaths the current daemon heard of. Each
//! next daemon is started by `start.rs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use warmpool_fake::{Agent, FAKE_HOST};

use super::exercise::Count;
use super::world::{End, Held, Sim};

impl Sim {
    /// `kill -9`: the daemon stops at whatever await point it is, and a new one starts on the
    /// same engine and store.
    pub(crate) fn crash(&mut self) {
        self.ex.add(Count::Crashes, 1);
        self.note_suspended_at_stop();
        self.note(format!("CRASH (kill -9) incarnation {}", self.incarnation));
        for b in &self.backends {
            b.crash();
        }
        self.manager.cancel_token().cancel();
        self.resets_cut();
        let lost = self.persist && self.rng.f64() < 0.1;
        if lost {
            self.lose_store();
        } else {
            let committed = self.store.snapshot();
            self.checks.crashed(committed);
        }
        self.scales_across_restart(!lost);
        self.next_daemon();
    }

    /// SIGTERM, then a new daemon on the same engine and store.
    pub(crate) async fn graceful_restart(&mut self) {
        self.ex.add(Count::Restarts, 1);
        self.note_suspended_at_stop();
        self.note(format!(
            "SIGTERM incarnation {} (keep_on_shutdown {})",
            self.incarnation, self.mcfg.keep_on_shutdown
        ));
        let m = self.manager.clone();
        let r = m.shutdown(Duration::from_secs(5)).await;
        self.note(format!(
            "shut down: destroyed {} kept {} swept {}",
            r.destroyed, r.kept, r.swept
        ));
        for b in &self.backends {
            b.crash();
        }
        self.resets_cut();
        if self.mcfg.keep_on_shutdown {
            let committed = self.store.snapshot();
            self.checks.crashed(committed);
        } else {
            // Every lease ended with the daemon.
            let mut model = self.model();
            let held: Vec<(String, Held)> = std::mem::take(&mut model.held).into_iter().collect();
            for (id, h) in held {
                model.end(&id, &h.container, End::Gone);
            }
        }
        self.scales_across_restart(true);
        self.next_daemon();
    }

    /// A reuse whose reset was under way when the daemon stopped never passed: its container
    /// must never be lent again.
    fn resets_cut(&mut self) {
        let mut m = self.model();
        let mut cut = 0;
        for h in m.history.values_mut() {
            if let Some(e) = h.last_mut()
                && e.1 == End::Resetting
            {
                e.1 = End::Gone;
                cut += 1;
            }
        }
        drop(m);
        if cut > 0 {
            self.ex.add(Count::CrashMidReset, 1);
            self.note(format!("{cut} reuse reset(s) cut by the stop"));
        }
    }

    /// The store's file is lost with the crash. What README leaves out: a container that was
    /// lent and whose used mark had not landed yet may be re-adopted and lent again (exempt
    /// from the lending checks from now on); committed leases are gone too. Its lease may have
    /// ended already: a container released while its engine is unreachable stays there,
    /// unmarked (the mark is retried until the engine answers), until the engine returns.
    fn lose_store(&mut self) {
        self.ex.add(Count::StoreLosses, 1);
        let unmarked: Vec<String> = self
            .engines
            .iter()
            .flat_map(|e| {
                e.state()
                    .containers
                    .values()
                    .filter(|c| !c.used)
                    .map(|c| c.id.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut m = self.model();
        let live: Vec<String> = unmarked
            .into_iter()
            .filter(|c| m.history.get(c).is_some_and(|h| !h.is_empty()))
            .collect();
        let n = live.len();
        m.exempt.extend(live);
        drop(m);
        self.note(format!(
            "the store is lost ({n} lent container(s) unmarked)"
        ));
        self.store.lose();
        self.checks.committed = None;
    }

    /// Start the next daemon: now and then its store cannot be loaded for a while, an image
    /// moved or a pool's spec changed while it was down.
    fn next_daemon(&mut self) {
        if self.persist && self.rng.f64() < 0.2 {
            let for_ms = self.rng.u64(1_000..90_000);
            self.ex.add(Count::StoreLoadFailures, 1);
            self.note(format!("the store cannot be loaded for {for_ms} ms"));
            self.store.fail_load.store(true, Ordering::Release);
            let store = self.store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                store.fail_load.store(false, Ordering::Release);
            });
        }
        if self.rng.f64() < 0.25 {
            let i = self.rng.usize(0..self.engines.len());
            let id = format!("sha256:gen{}", self.step);
            self.note(format!("the image moved to {id} on engine {i}"));
            self.engines[i].state().image_id = id;
        }
        if self.rng.f64() < 0.2 {
            let i = self.rng.usize(0..self.pools.len());
            let step = self.step;
            let p = &mut self.pools[i].0;
            p.spec.env.insert("GEN".into(), format!("r{step}"));
            let note = format!("the next daemon has a new spec for {}", p.name);
            self.note(note);
        }
        // Containers the next daemon must not re-adopt for their spec or image.
        let mut stale = 0;
        for e in &self.engines {
            let w = e.state();
            for c in w.containers.values() {
                let spec = self.pools.iter().find(|(p, _)| p.name == c.pool);
                if c.host == FAKE_HOST
                    && c.running
                    && !c.used
                    && spec.is_some_and(|(p, _)| {
                        c.image_id != w.image_id || c.fingerprint != p.spec.fingerprint(&c.image_id)
                    })
                {
                    stale += 1;
                }
            }
        }
        self.ex.add(Count::StaleAtRestart, stale);
        self.start_incarnation();
    }

    /// Containers whose agent's death the current daemon heard of: it must remove them.
    pub(crate) fn agent_dead_here(&self) -> Vec<String> {
        let mut v = Vec::new();
        for e in &self.engines {
            let w = e.state();
            v.extend(
                w.containers
                    .values()
                    .filter(|c| {
                        matches!(c.agent, Agent::Dead(_))
                            && c.agent_reported.is_some_and(|(k, _)| k == w.current_conn)
                    })
                    .map(|c| c.id.clone()),
            );
        }
        v
    }
}
