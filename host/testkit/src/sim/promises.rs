//! The promises checked after every step besides those of `check.rs`: the daemon's own
//! deadlines end what hangs, its breaker's single trial, another `host_id`'s containers left
//! alone, the store's backlog bounded, nothing served before the store could be read, the
//! scale overrides (`scale.rs`), and, at rest, no container whose agent died is left.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Failure;
use super::world::Sim;

/// How late past its deadline a hang may still be running at a check.
const LATE_BY: Duration = Duration::from_secs(1);

impl Sim {
    pub(crate) fn check_more(&mut self) -> Result<(), Failure> {
        self.check_engine_saw()?;
        self.check_hangs()?;
        self.check_foreign()?;
        self.check_backlog()?;
        self.check_tenants()?;
        self.check_load()?;
        self.check_hibernation()?;
        self.check_scales()
    }

    /// Each tenant's lease count, which the lease table keeps as leases come and go (release,
    /// reuse, expiry, death, crash and restore), is the number of leases it holds: the count a
    /// tenant's `max_leases` is checked against.
    fn check_tenants(&mut self) -> Result<(), Failure> {
        let leases = self.manager.leases();
        for t in super::client::TENANTS {
            let held = leases
                .iter()
                .filter(|l| l.tenant.as_deref() == Some(t))
                .count() as u32;
            let counted = self.manager.tenant_leases(t);
            if held != counted {
                return Err(self.fail(format!(
                    "tenant {t} holds {held} leases, the table counts {counted}"
                )));
            }
            if held > 0 {
                self.ex.add(super::exercise::Count::TenantCounts, 1);
            }
        }
        Ok(())
    }

    /// What the engines recorded themselves: a hang or an overrunning exec the daemon ended
    /// past its deadline, a second trial create under an open breaker.
    fn check_engine_saw(&self) -> Result<(), Failure> {
        for e in &self.engines {
            let first = e.state().late.first().cloned();
            if let Some(v) = first {
                return Err(self.fail(v));
            }
        }
        Ok(())
    }

    /// Every call of the current daemon that hangs with no end of its own, and every exec the
    /// engine lets run past its timeout, is ended by the daemon's own deadline.
    fn check_hangs(&self) -> Result<(), Failure> {
        let now = Instant::now();
        for e in &self.engines {
            let w = e.state();
            for h in w.hangs.values() {
                if h.conn == w.current_conn && now > h.since + h.bound + LATE_BY {
                    return Err(self.fail(format!(
                        "a {} has hung for {:?}, past the daemon's deadline {:?}",
                        h.call,
                        now - h.since,
                        h.bound
                    )));
                }
            }
            for ((c, session), (deadline, conn)) in &w.overruns {
                if *conn == w.current_conn && now > *deadline + LATE_BY {
                    return Err(self.fail(format!(
                        "exec session {session} in {c} runs {:?} past the daemon's deadline on it",
                        now - *deadline
                    )));
                }
            }
        }
        Ok(())
    }

    /// Another `host_id`'s containers are never removed, marked, lent or written to.
    fn check_foreign(&self) -> Result<(), Failure> {
        let w = self.engines[0].state();
        for id in &self.foreign {
            match w.containers.get(id) {
                None => {
                    return Err(self.fail(format!("container {id} of another host_id was removed")));
                }
                Some(c) if c.used || !c.files.is_empty() || !c.lease_env.is_empty() => {
                    return Err(self.fail(format!(
                        "container {id} of another host_id was marked or written to"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The changes waiting for a commit never outgrow the live state, however long the store
    /// fails: at most one per live lease and container, and one per record the store holds.
    fn check_backlog(&self) -> Result<(), Failure> {
        let Some(stats) = self.manager.persist_stats() else {
            return Ok(());
        };
        let stored = self.store.snapshot();
        // Scale overrides: at most one per pool name the sim ever used.
        let bound = self.manager.leases().len()
            + self.manager.accounted().len()
            + stored.leases.len()
            + stored.lendable.len()
            + self.next_pool as usize;
        if stats.pending > bound {
            return Err(self.fail(format!(
                "{} changes wait for a commit, more than the live state and the store hold ({bound})",
                stats.pending
            )));
        }
        Ok(())
    }

    /// A daemon that cannot read its store serves nothing (it reconciles nothing, so it lends
    /// and creates nothing) until it can.
    fn check_load(&self) -> Result<(), Failure> {
        if self.persist && self.store.fail_load.load(Ordering::Acquire) && self.manager.reconciled()
        {
            return Err(self.fail(
                "the daemon reconciled (and serves) although its store cannot be loaded".into(),
            ));
        }
        Ok(())
    }

    /// At rest: every container whose agent's death the daemon heard of is gone, and another
    /// `host_id`'s are all still there.
    pub(crate) fn check_end_more(&self) -> Result<(), Failure> {
        let dead = self.agent_dead_here();
        if !dead.is_empty() {
            return Err(self.fail(format!(
                "at rest, containers whose agent's death was reported are still on the engine: {dead:?}"
            )));
        }
        self.check_foreign()
    }
}
