//! Checkpoint and restore on the fake engine, as a runsc engine in experimental mode does them:
//! a suspend stops the container keeping its processes and files in a checkpoint (and the
//! engine reports the stop as a death, as Docker does), a resume brings them back. An engine
//! without support answers `Unsupported` with its reason ([`World::no_checkpoint`]), the
//! container still running.
//!
//! The `fail_hibernate` fault fails a suspend or a resume in one of three ways, at random:
//! before the engine acted (nothing changed), after it acted (the answer is lost), or midway
//! with the container's memory lost (stopped without a checkpoint).

use warmpool_core::{BackendError, BackendEvent, Hibernation};

use crate::FakeBackend;
use crate::gate::CALL_DEADLINE;

/// How an injected hibernation failure strikes.
enum Strike {
    Before,
    After,
    Midway,
}

impl FakeBackend {
    fn strike(&self) -> Option<Strike> {
        let mut w = self.state();
        let p = w.faults.fail_hibernate;
        if !w.roll(p) {
            return None;
        }
        w.hibernate_faults += 1;
        Some(match w.rng.u8(0..3) {
            0 => Strike::Before,
            1 => Strike::After,
            _ => Strike::Midway,
        })
    }

    pub(crate) async fn fake_suspend(&self, id: &str) -> Result<(), BackendError> {
        self.gate("checkpoint", CALL_DEADLINE).await?;
        let unsupported = self.state().no_checkpoint.clone();
        if let Some(why) = unsupported {
            return self.answer(Err(BackendError::Unsupported(why))).await;
        }
        self.running(id)?;
        let strike = self.strike();
        if matches!(strike, Some(Strike::Before)) {
            return self.answer(Err(injected("checkpoint", id))).await;
        }
        {
            let mut w = self.state();
            if let Some(c) = w.containers.get_mut(id) {
                c.running = false;
                // Midway: the engine died with the container stopped and no checkpoint.
                c.checkpoint = !matches!(strike, Some(Strike::Midway));
                if !c.checkpoint {
                    c.procs.clear();
                }
            }
            w.checkpoints += 1;
        }
        self.report_stop(id);
        match strike {
            None => self.answer(Ok(())).await,
            Some(_) => self.answer(Err(injected("checkpoint", id))).await,
        }
    }

    pub(crate) async fn fake_resume(&self, id: &str) -> Result<(), BackendError> {
        self.gate("restore", CALL_DEADLINE).await?;
        let strike = self.strike();
        if matches!(strike, Some(Strike::Before)) {
            return self.answer(Err(injected("restore", id))).await;
        }
        let r = {
            let mut w = self.state();
            match w.containers.get_mut(id) {
                Some(c) if c.running => Ok(()),
                Some(c) if c.checkpoint => {
                    if matches!(strike, Some(Strike::Midway)) {
                        // The restore failed and took the checkpoint with it.
                        c.checkpoint = false;
                        c.procs.clear();
                        Err(injected("restore", id))
                    } else {
                        c.checkpoint = false;
                        c.running = true;
                        c.died_at = None;
                        w.restores += 1;
                        Ok(())
                    }
                }
                Some(_) => Err(BackendError::Operation {
                    stage: "restore",
                    container: id.into(),
                    message: "the container has no checkpoint".into(),
                }),
                None => Err(BackendError::NotFound {
                    what: "container",
                    subject: id.into(),
                }),
            }
        };
        match (r, strike) {
            (Ok(()), Some(Strike::After)) => self.answer(Err(injected("restore", id))).await,
            (r, _) => self.answer(r).await,
        }
    }

    pub(crate) async fn fake_hibernation(&self, id: &str) -> Result<Hibernation, BackendError> {
        self.gate("inspect", CALL_DEADLINE).await?;
        let h = {
            let w = self.state();
            match w.containers.get(id) {
                Some(c) if c.running => Hibernation::Running,
                Some(c) if c.checkpoint => Hibernation::Checkpointed,
                _ => Hibernation::Lost,
            }
        };
        self.answer(Ok(h)).await
    }

    /// The engine reports a checkpoint's stop as a death (Docker's `die`); the daemon must
    /// not take it for one.
    fn report_stop(&self, id: &str) {
        let ev = BackendEvent::Died {
            id: id.into(),
            reason: "die (exit code 0)".into(),
        };
        let watchers = self
            .engine()
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for tx in watchers {
            let _ = tx.try_send(ev.clone());
        }
    }
}

fn injected(stage: &'static str, id: &str) -> BackendError {
    BackendError::Operation {
        stage,
        container: id.into(),
        message: "injected failure".into(),
    }
}
