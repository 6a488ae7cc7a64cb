//! The fake's exec: the few commands of the crate's table, run against the in-memory
//! container, with sessions whose processes die when the exec is dropped or times out.

use std::time::Duration;

use tokio::time::Instant;
use warmpool_core::{BackendError, ExecOutput, ExecRequest};

use crate::FakeBackend;
use crate::engine::*;
use crate::gate::{EXEC_SLACK, under};

/// Kills the processes of an exec's session if the exec is dropped before it finishes.
struct SessionGuard<'a> {
    engine: &'a FakeEngine,
    id: String,
    session: u64,
    armed: bool,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            kill_session(self.engine, &self.id, self.session);
        }
    }
}

/// An exec that outlives its timeout: ends its record when the daemon ends the call (its
/// deadline drops it, or the lease's stop), checking it was in time. Declared after the
/// session's guard, so it drops first and that guard then kills the processes.
struct OverrunGuard<'a> {
    engine: &'a FakeEngine,
    key: (String, u64),
}

impl Drop for OverrunGuard<'_> {
    fn drop(&mut self) {
        let mut w = self.engine.state();
        if let Some((deadline, conn)) = w.overruns.remove(&self.key) {
            w.overruns_ended += 1;
            let now = Instant::now();
            if conn == w.current_conn && now > deadline + Duration::from_secs(1) {
                w.late.push(format!(
                    "an exec in {} that outlived its timeout was ended {:?} past the daemon's deadline",
                    self.key.0,
                    now - deadline
                ));
            }
        }
    }
}

fn kill_session(engine: &FakeEngine, id: &str, session: u64) {
    if let Some(c) = engine.state().containers.get_mut(id) {
        c.procs.retain(|_, p| p.session != Some(session));
    }
}

fn stopped(id: &str) -> BackendError {
    BackendError::Operation {
        stage: "exec",
        container: id.into(),
        message: "stopped: its lease ended or its client went away".into(),
    }
}

impl FakeBackend {
    /// The exec every `Backend::exec` call runs: the commands of the crate's table.
    pub(crate) async fn run_exec(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        // The daemon's deadline on an exec: its own timeout and some slack.
        let bound = req.timeout + EXEC_SLACK;
        self.gate("exec", bound).await?;
        self.fail(|f| f.fail_exec, "exec", id)?;
        self.running(id)?;
        self.agent(id, "exec", bound).await?;
        if req.stop.is_stopped() {
            return Err(stopped(id));
        }
        let session = {
            let mut w = self.state();
            w.next_session += 1;
            w.next_session
        };
        let mut guard = SessionGuard {
            engine: &self.engine,
            id: id.into(),
            session,
            armed: true,
        };
        let args: Vec<&str> = req.cmd.iter().map(String::as_str).collect();
        let tick = self.engine.tick();
        let mut out = ExecOutput::default();
        let mut code = 0;
        match args.as_slice() {
            ["false", ..] => code = 1,
            ["write", path, text] => {
                // A busy engine runs it a while later; a stop before then kills it unwritten.
                if let Some(t) = self.in_transit() {
                    tokio::select! {
                        () = tokio::time::sleep(t) => {}
                        () = req.stop.stopped() => return Err(stopped(id)),
                    }
                }
                self.land(id, path, text.as_bytes().to_vec());
            }
            ["hide", mount] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id)
                    && c.tmpfs_mounts.iter().any(|m| m == mount)
                {
                    c.hidden.insert(mount.to_string());
                }
            }
            ["spawn", tag] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id) {
                    let pid = c.next_pid;
                    c.next_pid += 1;
                    c.procs.insert(
                        pid,
                        FakeProc {
                            cmd: tag.to_string(),
                            started: tick.max(1),
                            session: Some(session),
                        },
                    );
                }
            }
            ["sleep", ms] => {
                let ms: u64 = ms.parse().unwrap_or(0);
                {
                    let mut w = self.state();
                    if let Some(c) = w.containers.get_mut(id) {
                        let pid = c.next_pid;
                        c.next_pid += 1;
                        c.procs.insert(
                            pid,
                            FakeProc {
                                cmd: format!("sleep {ms}"),
                                started: tick.max(1),
                                session: Some(session),
                            },
                        );
                    }
                }
                let t = if req.timeout.is_zero() {
                    Duration::from_secs(60)
                } else {
                    req.timeout
                };
                let ran = Duration::from_millis(ms).min(t);
                let overrun = Duration::from_millis(ms) > t && {
                    let mut w = self.state();
                    let p = w.faults.exec_overrun;
                    w.roll(p)
                };
                if overrun {
                    // The engine lets it run past its timeout and never answers: only the
                    // daemon's stop or its deadline (dropping the call) ends it.
                    let key = (id.to_string(), session);
                    self.state()
                        .overruns
                        .insert(key.clone(), (Instant::now() + bound, self.conn));
                    let _overrun = OverrunGuard {
                        engine: &self.engine,
                        key,
                    };
                    req.stop.stopped().await;
                    kill_session(&self.engine, id, session);
                    return Err(stopped(id));
                }
                tokio::select! {
                    () = tokio::time::sleep(ran) => out.timed_out = Duration::from_millis(ms) > t,
                    () = req.stop.stopped() => {
                        kill_session(&self.engine, id, session);
                        return Err(stopped(id));
                    }
                }
                kill_session(&self.engine, id, session);
            }
            ["clean", dirs @ ..] => {
                let mut w = self.state();
                if let Some(c) = w.containers.get_mut(id) {
                    c.files.retain(|p, _| !dirs.iter().any(|d| under(p, d)));
                    c.tmpfs.retain(|p, _| !dirs.iter().any(|d| under(p, d)));
                }
            }
            ["check-empty", dirs @ ..] => {
                let w = self.state();
                if let Some(c) = w.containers.get(id)
                    && c.files
                        .keys()
                        .chain(c.tmpfs.keys())
                        .any(|p| dirs.iter().any(|d| under(p, d)))
                {
                    code = 1;
                }
            }
            ["die", ..] => {
                guard.armed = false;
                self.engine.kill(id, "die (exit code 0)");
                return self
                    .answer(Ok(ExecOutput {
                        exit_code: Some(0),
                        ..out
                    }))
                    .await;
            }
            _ => out.stdout = req.cmd.join(" ").into_bytes(),
        }
        guard.armed = false;
        out.exit_code = (!out.timed_out).then_some(code);
        self.answer(Ok(out)).await
    }
}
