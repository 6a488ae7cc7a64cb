//! What the client checks at the instant it is handed a container, and what it records when a
//! call on a lease fails.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use warmpool_core::{LeaseError, Resources};

use super::world::{End, Held, Model};
use warmpool_fake::MemoryStore;
use warmpool_fake::{Agent, FAKE_HOST, FakeEngine};

/// Healthy time (see `check.rs`) after which a dead container, its death event lost, must no
/// longer be handed out: two running sweeps (30 s apart) and slack. The sweep checks what is
/// ready or leased when it starts; one that died elsewhere (in a reuse's reset, on its way to
/// an acquire) and became ready just after a sweep is found by the next.
pub(crate) const DEAD_WITHIN: Duration = Duration::from_secs(75);

pub(crate) fn secret(lease: &str) -> String {
    format!("SECRET-{lease}")
}

/// After an operation on lease `id` returned `err`: a lease that is gone is forgotten, and an
/// engine error is only ever answered for a lease that is still live. One that ended while the
/// call ran (expired, released, its container died) must say so, not pass on what the engine
/// said of a container removed under it. The runtime has one thread and nothing runs between
/// the call's return and this check.
pub(crate) fn ended_during_call<B: warmpool_core::Backend>(
    m: &warmpool_core::Manager<B>,
    model: &Arc<std::sync::Mutex<Model>>,
    id: &str,
    op: &str,
    err: Option<LeaseError>,
) {
    match err {
        Some(LeaseError::UnknownLease(_)) => forget(model, id),
        Some(e @ LeaseError::Backend { .. }) if m.lease(id).is_err() => {
            let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
            model.violations.push(format!(
                "{op} on lease {id}, which ended during the call, answered an engine error: {e}"
            ));
        }
        _ => {}
    }
}

pub(crate) fn forget(model: &Arc<std::sync::Mutex<Model>>, id: &str) {
    let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = m.held.remove(id) {
        m.end(id, &h.container, End::Gone);
    }
}

/// A client was handed `container` for `lease`: check, at this instant, that it holds nothing
/// of anyone else; is running, unless its death was never reported or is recent; has an agent
/// whose death this daemon has not heard; is this daemon's (`host_id`); was committed to the
/// lendable set first (so nothing new is lent while the store fails); if an earlier daemon
/// made it, matches the spec and image this one started with; and was not lent before without
/// a passed reuse.
pub(crate) fn handed(
    model: &mut Model,
    engines: &[Arc<FakeEngine>],
    store: Option<&MemoryStore>,
    lease: &str,
    container: &str,
    ask: Option<Resources>,
) {
    let now = Instant::now();
    let mut v = Vec::new();
    let first_lend = !model.history.contains_key(container);
    {
        // Container IDs are unique across engines (each engine has its own prefix).
        let engine = engines
            .iter()
            .find(|e| e.state().containers.contains_key(container))
            .unwrap_or(&engines[0]);
        let w = engine.state();
        match w.containers.get(container) {
            None => v.push(format!(
                "lease {lease} was handed container {container}, which does not exist"
            )),
            Some(c) => {
                if !c.running && c.death_reported && c.died_at.is_some_and(|t| t < now) {
                    v.push(format!(
                        "lease {lease} was handed container {container}, whose death was reported before"
                    ));
                }
                if !c.running
                    && model
                        .dead_healthy
                        .get(container)
                        .is_some_and(|t| *t > DEAD_WITHIN)
                {
                    v.push(format!(
                        "lease {lease} was handed container {container}, dead for more than {DEAD_WITHIN:?} of healthy time (its death event lost)"
                    ));
                }
                if matches!(c.agent, Agent::Dead(_))
                    && c.agent_reported
                        .is_some_and(|(conn, t)| conn == w.current_conn && t < now)
                {
                    v.push(format!(
                        "lease {lease} was handed container {container}, whose agent's death ({:?}) was reported before",
                        c.agent
                    ));
                }
                if c.host != FAKE_HOST {
                    v.push(format!(
                        "lease {lease} was handed container {container} of another host_id ({})",
                        c.host
                    ));
                }
                if let Some(store) = store {
                    if !store.is_lendable(container) {
                        v.push(format!(
                            "lease {lease} was handed container {container}, which no commit made lendable"
                        ));
                    }
                    if store.fail.load(std::sync::atomic::Ordering::Acquire) {
                        model.lent_while_failing += 1;
                    }
                }
                if first_lend
                    && model.started_at.is_some_and(|t| c.created_at < t)
                    && let Some(spec) = model.start_specs.get(&c.pool)
                    && (c.image_id != w.image_id || c.fingerprint != spec.fingerprint(&c.image_id))
                {
                    v.push(format!(
                        "lease {lease} was handed container {container}, made by an earlier daemon for another spec or image ({} {}; now {})",
                        c.fingerprint, c.image_id, w.image_id
                    ));
                }
                // The limits its lease should have: what it asked (a field not asked is the
                // pool's), or the pool's, which a reuse must have put back.
                let ask = ask.unwrap_or_default();
                let want = Resources {
                    nano_cpus: ask.nano_cpus.or(c.spec_limits.nano_cpus),
                    memory: ask.memory.or(c.spec_limits.memory),
                };
                if c.limits != want {
                    v.push(format!(
                        "lease {lease} was handed container {container} with limits {:?}, not {want:?}",
                        c.limits
                    ));
                } else if !ask.is_empty() {
                    model.resized_acquires += 1;
                } else if c.resized {
                    model.relent_restored += 1;
                }
                let mine = secret(lease);
                for (path, data) in c.files.iter().chain(c.tmpfs.iter()) {
                    let text = String::from_utf8_lossy(data);
                    if text.starts_with("SECRET-") && text != mine {
                        v.push(format!(
                            "lease {lease} was handed container {container} holding {path} = {text} of an earlier client"
                        ));
                    }
                }
                for (pid, p) in &c.procs {
                    if p.cmd.starts_with("spy-") || p.session.is_some() {
                        v.push(format!(
                            "lease {lease} was handed container {container} still running process {pid} {} of an earlier client",
                            p.cmd
                        ));
                    }
                }
            }
        }
    }
    model.violations.extend(v);
    let exempt = model.exempt.contains(container);
    let history = model.history.entry(container.to_string()).or_default();
    if let Some((prev, end)) = history.last()
        && prev != lease
        && !matches!(end, End::ReusedOk | End::Resetting)
        && !exempt
    {
        let msg = format!(
            "container {container} was lent to lease {lease} after lease {prev} ended {end:?} (no passed reuse)"
        );
        model.violations.push(msg);
    }
    history.push((lease.to_string(), End::Open));
    model.held.insert(
        lease.to_string(),
        Held {
            container: container.to_string(),
        },
    );
}
