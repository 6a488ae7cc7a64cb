//! One control inbox. Everything that asks the daemon to change course (SIGHUP and the config
//! file watcher asking for a reload, `POST /v1/admin/reload`, the plugin file watcher reporting
//! changed files, SIGTERM and SIGINT asking it to stop) sends a [`Control`] into one bounded
//! channel, and one supervisor task ([`supervisor`]) applies them in order, as vector's
//! `SignalTo` and linkerd's admin shutdown do. A failed attempt is reported and never ends the
//! loop; a supervisor that is gone makes `/readyz` fail.

pub mod signals;
pub mod supervisor;

use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// SIGHUP.
    Signal,
    /// The config file changed.
    File,
    /// `POST /v1/admin/reload`.
    Admin,
}

impl Source {
    /// How logs name the trigger: the signal's own name, or where the request came from.
    pub fn name(self) -> &'static str {
        match self {
            Source::Signal => "SIGHUP",
            Source::File => "file",
            Source::Admin => "admin",
        }
    }
}

/// What a reload did: the pools it touched and the settings that need a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Pools the new config adds.
    pub added: Vec<String>,
    /// Pools it removes (they drain; open leases keep working).
    pub removed: Vec<String>,
    /// Pools whose settings changed.
    pub changed: Vec<String>,
    /// Of `changed`, the pools whose container spec changed (their ready containers drain).
    pub respec: Vec<String>,
    /// Settings that changed in the file but apply only at a restart (the running values stay).
    pub restart_only: Vec<String>,
}

/// The answer to whoever asked for a reload and waits for it.
pub type ReloadReply = oneshot::Sender<Result<ReloadSummary, String>>;

/// A request to the supervisor.
#[derive(Debug)]
pub enum Control {
    /// Read the config file again and apply what changed.
    Reload {
        /// Who asked.
        source: Source,
        /// Where to send the outcome, when the asker waits for it (the admin route).
        reply: Option<ReloadReply>,
    },
    /// Plugin files changed (paths as the watcher reported them).
    PluginChanged(Vec<PathBuf>),
    /// Stop: the signal's name.
    Shutdown(&'static str),
}

/// Requests the inbox holds before a sender is told it is full.
pub const CAPACITY: usize = 64;

/// The sending side of the inbox, cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbox(mpsc::Sender<Control>);

impl Inbox {
    /// A new inbox of [`CAPACITY`], and the receiving end the supervisor reads.
    pub fn new() -> (Self, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (Self(tx), rx)
    }

    /// Send without waiting. A full inbox drops the request, which is safe for the watchers:
    /// the requests already queued cover it (a reload reads the whole file; plugin changes are
    /// coalesced). Returns whether the supervisor will see it.
    pub fn offer(&self, c: Control) -> bool {
        self.0.try_send(c).is_ok()
    }

    /// Send, waiting for room: for requests that must not be dropped (a signal, the admin route).
    pub async fn send(&self, c: Control) -> bool {
        self.0.send(c).await.is_ok()
    }

    /// Whether the supervisor still reads the inbox.
    pub fn is_open(&self) -> bool {
        !self.0.is_closed()
    }
}
