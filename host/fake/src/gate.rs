//! What every call of a connection to the fake engine passes through: a killed daemon's calls
//! never answer, a down engine refuses, and the hang faults; with the helpers the calls share
//! (injected failures, writes landing, the running check, and whether a path lies under a
//! directory).

use std::time::Duration;

use tokio::time::Instant;
use warmpool_core::BackendError;

use crate::FakeBackend;
use crate::engine::*;

/// The daemon's own deadline on an engine call that is neither a create, an exec nor a ping
/// (`CALL_TIMEOUT` in `warmpool_core::lifecycle`).
pub const CALL_DEADLINE: Duration = Duration::from_secs(150);
/// What the daemon adds to an exec's own timeout for its deadline (`CALL_SLACK`).
pub const EXEC_SLACK: Duration = Duration::from_secs(30);
/// The daemon's deadline on a ping (`PING_TIMEOUT` in warmpool-core's `upkeep/monitor.rs`).
pub const PING_DEADLINE: Duration = Duration::from_secs(5);
/// How late past its deadline the daemon may end a call (timer granularity, same-instant
/// ordering).
const LATE_BY: Duration = Duration::from_secs(1);

/// Whether `path` is `dir` or lies under it: where a write lands, and what the exec commands,
/// the sessions and the reuse readings cover of a directory.
pub(crate) fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Ends an endless hang's record when its caller drops the call, checking it was in time.
struct HangGuard<'a> {
    engine: &'a FakeEngine,
    key: u64,
}

impl Drop for HangGuard<'_> {
    fn drop(&mut self) {
        let mut w = self.engine.state();
        if let Some(h) = w.hangs.remove(&self.key) {
            w.hangs_ended += 1;
            let took = Instant::now().saturating_duration_since(h.since);
            if h.conn == w.current_conn && took > h.bound + LATE_BY {
                w.late.push(format!(
                    "a hanging {} was ended after {took:?}, past the daemon's deadline {:?}",
                    h.call, h.bound
                ));
            }
        }
    }
}

impl FakeBackend {
    /// Every call passes here: a dead connection never answers; a down engine refuses; a hang
    /// fault waits out a client timeout, or, when endless, waits until the caller (the daemon's
    /// deadline on `call`, `bound`) gives up.
    pub(crate) async fn gate(
        &self,
        call: &'static str,
        bound: Duration,
    ) -> Result<(), BackendError> {
        if self.dead() {
            std::future::pending::<()>().await;
        }
        let (down, hang, endless, hang_for) = {
            let mut w = self.state();
            let (h, e) = (w.faults.hang, w.faults.hang_endless);
            let hang = w.roll(h);
            let endless = hang && w.roll(e);
            (w.down, hang, endless, w.faults.hang_for)
        };
        if endless {
            return self.hang_endless(call, bound).await;
        }
        if hang {
            tokio::time::sleep(hang_for).await;
            return Err(BackendError::Unavailable("request timed out".into()));
        }
        if down {
            return Err(BackendError::Unavailable("fake engine is down".into()));
        }
        Ok(())
    }

    /// Hang until the caller drops the call; the engine records the hang and, at its end,
    /// whether the daemon ended it within `bound`.
    pub(crate) async fn hang_endless<T>(&self, call: &'static str, bound: Duration) -> T {
        let key = {
            let mut w = self.state();
            w.next_hang += 1;
            let key = w.next_hang;
            let conn = self.conn;
            w.hangs.insert(
                key,
                Hang {
                    call,
                    since: Instant::now(),
                    bound,
                    conn,
                },
            );
            key
        };
        let _guard = HangGuard {
            engine: &self.engine,
            key,
        };
        std::future::pending().await
    }

    /// After the engine acted: a dead connection never delivers the answer.
    pub(crate) async fn answer<T>(&self, r: T) -> T {
        if self.dead() {
            std::future::pending::<()>().await;
        }
        r
    }

    /// How long a write of this call is in transit, when the `slow_ops` fault rolls.
    pub(crate) fn in_transit(&self) -> Option<Duration> {
        let mut w = self.state();
        let (p, t) = (w.faults.slow_ops, w.faults.slow_for);
        w.roll(p).then_some(t)
    }

    /// A write lands in container `id`: in a bind mount, a tmpfs, or the layer.
    pub(crate) fn land(&self, id: &str, path: &str, data: Vec<u8>) {
        let mut w = self.state();
        if let Some(c) = w.containers.get_mut(id) {
            if c.binds.contains_key(path) {
                c.binds.insert(path.into(), data);
            } else if c.tmpfs_mounts.iter().any(|m| under(path, m)) {
                c.tmpfs.insert(path.into(), data);
            } else {
                c.files.insert(path.into(), data);
            }
        }
    }

    pub(crate) fn fail(
        &self,
        p: impl Fn(&Faults) -> f64,
        stage: &'static str,
        id: &str,
    ) -> Result<(), BackendError> {
        let mut w = self.state();
        let p = p(&w.faults);
        if w.roll(p) {
            return Err(BackendError::Operation {
                stage,
                container: id.into(),
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn running(&self, id: &str) -> Result<(), BackendError> {
        match self.state().containers.get(id) {
            Some(c) if c.running => Ok(()),
            Some(_) => Err(BackendError::Operation {
                stage: "exec",
                container: id.into(),
                message: "container is not running".into(),
            }),
            None => Err(BackendError::NotFound {
                what: "container",
                subject: id.into(),
            }),
        }
    }
}
