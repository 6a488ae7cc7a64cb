//! The fake's exec: the few commands of the parent module's table, run against the in-memory
//! container, with sessions whose processes die when the exec is dropped or times out.

use std::time::Duration;

use warmpool_core::{BackendError, ExecOutput, ExecRequest};

use super::FakeBackend;
use super::engine::*;

/// Whether `path` is `dir` or lies under it.
pub(super) fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

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
    /// The exec every `Backend::exec` call runs: the commands of the parent module's table.
    pub(super) async fn run_exec(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        self.gate().await?;
        self.fail(|f| f.fail_exec, "exec", id)?;
        self.running(id)?;
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
