//! What crosses the seam for commands that stream (output as it comes, input as it is typed,
//! a terminal), and for a lease's own environment, secrets and files.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitStatus {
    /// Its exit code, when it exited.
    pub exit_code: Option<i64>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// It outlived its timeout and its tree was killed.
    pub timed_out: bool,
    /// The connection to the container was lost before the end was known.
    pub lost: bool,
}

/// What a running command sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Output (a terminal's whole output, under a terminal).
    Stdout(Bytes),
    /// Error output.
    Stderr(Bytes),
    /// The end; nothing follows.
    Exit(ExitStatus),
}

/// What a running command takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for its stdin (its terminal's input).
    Stdin(Bytes),
    /// The end of its stdin.
    CloseStdin,
    /// Its terminal's new size.
    Resize(TermSize),
    /// A signal for it (its process group).
    Signal(i32),
}

/// A command running as a session: its events as they come, its input as it is given.
/// Dropping both ends kills its whole tree.
#[derive(Debug)]
pub struct ExecSession {
    /// Its events, ending with [`ExecEvent::Exit`].
    pub events: mpsc::Receiver<ExecEvent>,
    /// Its input.
    pub input: mpsc::Sender<ExecInput>,
}

/// A secret's value: never printed, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(v: String) -> Self {
        Self(v)
    }

    /// The value, for the one place that hands it to the sandbox.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A small file a lease starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFile {
    /// Absolute path.
    pub path: String,
    /// Its content.
    pub content: Bytes,
    /// Permission bits; `None`: 0644.
    pub mode: Option<u32>,
}

/// A lease's own environment, secrets, working directory and files, applied to its container
/// before the lease is handed out, and to every later exec and terminal of the lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseSetup {
    /// Variables.
    pub env: BTreeMap<String, String>,
    /// Secrets: variables that never appear in logs, events, the store or the engine's view of
    /// the container.
    pub secrets: BTreeMap<String, Secret>,
    /// Working directory of every exec.
    pub workdir: Option<String>,
    /// Files written before the lease is handed out.
    pub files: Vec<SetupFile>,
}

impl LeaseSetup {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.secrets.is_empty()
            && self.workdir.is_none()
            && self.files.is_empty()
    }
}
