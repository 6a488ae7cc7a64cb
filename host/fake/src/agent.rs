//! The agent inside each fake container, as the daemon's channel to it sees it: the backend-level
//! effects the real docker backend gives its agent faults (`host/docker/src/agent/channel.rs`).
//!
//! - **The agent dies, or sends a forged frame**: the channel dies and reports the container
//!   dead (a death event to its daemon), and every later operation on it fails, though the
//!   engine still says the container runs.
//! - **The channel stalls**: the operation, and every later one, gets no answer; the keepalive
//!   declares the agent dead [`AGENT_SILENT`] later and reports it. The fake is harsher than the
//!   real backend here: operations already hanging go on hanging until the daemon's own
//!   deadline ends them (the real one ends them at the verdict), so those deadlines are
//!   exercised.
//!
//! A daemon that never heard of the death (one started since) learns it at its first
//! operation on the container, as a real one does when it re-attaches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use warmpool_core::{BackendError, BackendEvent};

use crate::FakeBackend;
use crate::engine::*;

enum Then {
    Go,
    Fail(String),
    Hang,
}

/// Report container `id`'s agent dead to one daemon (`tx`, its connection `conn`), unless that
/// daemon already heard it.
fn report(
    engine: &FakeEngine,
    tx: Option<&mpsc::Sender<BackendEvent>>,
    conn: u64,
    id: &str,
    why: &str,
) {
    if engine
        .state()
        .containers
        .get(id)
        .is_none_or(|c| c.agent_reported.is_some_and(|(k, _)| k == conn))
    {
        return;
    }
    let ev = BackendEvent::Died {
        id: id.into(),
        reason: format!("agent: {why}"),
    };
    if tx.is_some_and(|tx| tx.try_send(ev).is_ok())
        && let Some(c) = engine.state().containers.get_mut(id)
    {
        c.agent_reported = Some((conn, Instant::now()));
    }
}

impl FakeBackend {
    /// Every operation through container `id`'s agent passes here after the gate: a dead agent
    /// fails it (and is reported), a stalled one hangs it until the daemon's deadline on
    /// `call` (`bound`), and the agent faults may strike now.
    pub(crate) async fn agent(
        &self,
        id: &str,
        call: &'static str,
        bound: Duration,
    ) -> Result<(), BackendError> {
        let then = {
            let mut w = self.state();
            let f = (
                w.faults.agent_dies,
                w.faults.agent_forged,
                w.faults.agent_stalls,
            );
            match w
                .containers
                .get(id)
                .filter(|c| c.running)
                .map(|c| c.agent.clone())
            {
                // Not running, or gone: the operation's own checks answer.
                None => Then::Go,
                Some(Agent::Dead(why)) => Then::Fail(why),
                Some(Agent::Stalled(_)) => Then::Hang,
                Some(Agent::Up) => {
                    let struck = if w.roll(f.0) {
                        Some((0, Agent::Dead("the agent exited (killed inside)".into())))
                    } else if w.roll(f.1) {
                        Some((2, Agent::Dead("a frame did not verify (forged)".into())))
                    } else if w.roll(f.2) {
                        Some((1, Agent::Stalled(Instant::now())))
                    } else {
                        None
                    };
                    match struck {
                        None => Then::Go,
                        Some((k, state)) => {
                            w.agent_faults[k] += 1;
                            let then = match &state {
                                Agent::Dead(why) => Then::Fail(why.clone()),
                                _ => Then::Hang,
                            };
                            if let Some(c) = w.containers.get_mut(id) {
                                c.agent = state;
                            }
                            if matches!(then, Then::Hang) {
                                drop(w);
                                self.keepalive(id);
                            }
                            then
                        }
                    }
                }
            }
        };
        match then {
            Then::Go => Ok(()),
            Then::Fail(why) => {
                let tx = self.events();
                report(&self.engine, tx.as_ref(), self.conn, id, &why);
                Err(BackendError::Operation {
                    stage: "agent",
                    container: id.into(),
                    message: why,
                })
            }
            Then::Hang => self.hang_endless(call, bound).await,
        }
    }

    /// Whether container `id`'s agent serves (the probe goes through it).
    pub(crate) fn agent_up(&self, id: &str) -> bool {
        self.state()
            .containers
            .get(id)
            .is_none_or(|c| c.agent == Agent::Up)
    }

    /// The channel to `id` stalled: [`AGENT_SILENT`] later the keepalive declares its agent
    /// dead and reports it to this connection's daemon, if that one still runs.
    fn keepalive(&self, id: &str) {
        let (engine, tx, conn, alive) = (
            self.engine.clone(),
            self.events(),
            self.conn,
            self.alive.clone(),
        );
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(AGENT_SILENT).await;
            silent(&engine, tx.as_ref(), conn, &alive, &id);
        });
    }
}

fn silent(
    engine: &Arc<FakeEngine>,
    tx: Option<&mpsc::Sender<BackendEvent>>,
    conn: u64,
    alive: &AtomicBool,
    id: &str,
) {
    let why = format!("the agent did not answer a ping within {AGENT_SILENT:?}");
    {
        let mut w = engine.state();
        let Some(c) = w.containers.get_mut(id) else {
            return;
        };
        if !matches!(c.agent, Agent::Stalled(_)) {
            return;
        }
        c.agent = Agent::Dead(why.clone());
    }
    if alive.load(Ordering::Acquire) {
        report(engine, tx, conn, id, &why);
    }
}
