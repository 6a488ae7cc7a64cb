//! The messages frames carry: requests to the agent, events from it. Each names the operation
//! it belongs to by an id the daemon chose, so one channel carries many operations at once.
//! Encoded with postcard.

use serde::{Deserialize, Serialize};

/// A message to the agent about operation `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToAgent {
    /// The operation (0 for the channel itself: ping, baseline, scrub…).
    pub id: u32,
    /// What to do.
    pub req: Req,
}

/// A message from the agent about operation `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromAgent {
    /// The operation the event belongs to (0: the channel itself).
    pub id: u32,
    /// What happened.
    pub ev: Ev,
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winsize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The command, as argv.
    pub argv: Vec<String>,
    /// Variables added to the container's environment (after the lease's own).
    pub env: Vec<(String, String)>,
    /// Working directory; `None`: the lease's, else the container's.
    pub workdir: Option<String>,
    /// Whether stdin frames follow (`Stdin`, then `CloseStdin`); otherwise stdin is empty.
    pub stdin: bool,
    /// Run under a pseudo-terminal of this size (stdout and stderr are then one stream).
    pub tty: Option<Winsize>,
    /// Kill the command's whole tree after this long; 0: never.
    pub timeout_ms: u64,
    /// Bytes of each stream to send; the rest is read and dropped, and the exit says so. 0:
    /// everything, under flow control (`Credit`).
    pub output_limit: u64,
}

/// A lease's own environment, applied to every later exec and terminal of the lease.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaseEnv {
    /// Variables.
    pub env: Vec<(String, String)>,
    /// Secrets: variables too, kept in the agent's memory only.
    pub secrets: Vec<(String, String)>,
    /// The lease's working directory.
    pub workdir: Option<String>,
}

/// One thing to read for the reuse check (see the Docker backend's scrub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inspect {
    /// A place: its own entry and, if a directory, every entry under it (not crossing into
    /// the other mount points given in `skip`).
    List {
        /// The place.
        path: String,
        /// Mount points inside it that are not to be listed.
        skip: Vec<String>,
    },
    /// One entry.
    Stat(String),
    /// A file's checksum.
    Sum(String),
    /// The image's directories: `/` and everything under it on the root filesystem, except
    /// the mount points given.
    Dirs {
        /// Mount points not to enter.
        skip: Vec<String>,
    },
    /// Every path on the root filesystem (not entering the mount points given) that carries
    /// extended attributes: `PATH<TAB>xattrs=NAMES:DIGEST`, sorted. The engine's diff does not
    /// show an attribute set on a file or directory of the image.
    Xattrs {
        /// Mount points not to enter.
        skip: Vec<String>,
    },
    /// A small text file of the kernel's, line by line (`/proc/self/mountinfo`,
    /// `/proc/sysvipc/shm`…).
    Read(String),
}

/// What the daemon asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Req {
    /// Answer `Pong`.
    Ping,
    /// Start a command; events `Started`, `Stdout`/`Stderr`, then `Exit`.
    Exec(ExecSpec),
    /// Bytes for the command's stdin (or the terminal's input).
    Stdin(Vec<u8>),
    /// Close the command's stdin.
    CloseStdin,
    /// Resize the command's terminal.
    Resize(Winsize),
    /// Send a signal to the command (its process group under a terminal).
    Signal(i32),
    /// End the operation: an exec's whole tree is killed (answered by its `Exit`), a file
    /// transfer is abandoned.
    Kill,
    /// The daemon can take this many more bytes of the operation's output.
    Credit(u32),
    /// The lease's environment, for every later exec; answered `Done`.
    SetLease(LeaseEnv),
    /// Forget the lease's environment; answered `Done`.
    ClearLease,
    /// Write a file of `len` bytes (sent as `Data`, then `End`), creating its parents; answered
    /// `Done`.
    WriteFile {
        /// Absolute path.
        path: String,
        /// Permission bits; `None`: 0644.
        mode: Option<u32>,
        /// Its length.
        len: u64,
    },
    /// Unpack a tar stream (sent as `Data`, then `End`) into a directory; answered `Done`.
    PutTar {
        /// Absolute path of the directory, created if missing.
        dir: String,
    },
    /// Bytes of a file or tar stream being sent.
    Data(Vec<u8>),
    /// The end of the bytes being sent.
    End,
    /// Read a regular file: `Size`, then `Data`…, then `End`.
    ReadFile(String),
    /// Pack a directory (or file) as a tar stream: `Data`…, then `End`.
    GetTar(String),
    /// Record the processes running now as the container's fresh state; answered `Done`.
    Baseline,
    /// Kill every process not in the baseline, and empty each directory given (with the mode
    /// to put back on it); answered `Done`, or `Failed` naming what could not be done.
    Scrub {
        /// `(mode, path)` of each place to empty.
        emptied: Vec<(u32, String)>,
    },
    /// Read what the reuse check needs; answered `Inspected`.
    Inspect(Vec<Inspect>),
}

/// One item of an `Inspected` answer, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inspected {
    /// Normalised entries (`MODE UID GID [SIZE] [xattrs]<TAB>PATH`), or why they cannot be read.
    Lines(Result<Vec<String>, String>),
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    /// The agent is up (a fresh start or a resume): its protocol version, and whether the
    /// container's own command runs.
    Ready {
        /// [`crate::VERSION`] of the agent.
        version: u32,
        /// Whether this is a resumed session (the agent was already running).
        resumed: bool,
    },
    /// Answer to `Ping`.
    Pong,
    /// The command started.
    Started,
    /// Output.
    Stdout(Vec<u8>),
    /// Error output.
    Stderr(Vec<u8>),
    /// The command exited (its output before it is complete).
    Exit {
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
        /// Output went past `output_limit` and was dropped.
        truncated: bool,
        /// It outlived `timeout_ms` and its tree was killed.
        timed_out: bool,
    },
    /// A file's size, before its bytes.
    Size(u64),
    /// Bytes of a file or tar stream.
    Data(Vec<u8>),
    /// The end of them.
    End,
    /// The request is done.
    Done,
    /// The request failed; why.
    Failed(String),
    /// The items asked by `Inspect`.
    Inspected(Vec<Inspected>),
    /// The clock in ticks since boot (sent with `Done` of `Baseline`).
    Ticks(u64),
    /// The container's own command ended, so the container ends: how, and the last of its
    /// output (the engine keeps no log of a container whose stdout is the channel). Sent on
    /// operation 0, the agent's last word.
    Gone {
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
        /// The last bytes it wrote (at most 2 KiB).
        tail: Vec<u8>,
    },
}

/// Encode a message.
pub fn encode<T: Serialize>(m: &T) -> Vec<u8> {
    postcard::to_stdvec(m).expect("messages always encode")
}

/// Decode a message.
pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ToAgent {
            id: 7,
            req: Req::Exec(ExecSpec {
                argv: vec!["true".into()],
                env: vec![("A".into(), "1".into())],
                workdir: None,
                stdin: false,
                tty: Some(Winsize { rows: 24, cols: 80 }),
                timeout_ms: 5000,
                output_limit: 0,
            }),
        };
        assert_eq!(decode::<ToAgent>(&encode(&m)).unwrap(), m);
        let e = FromAgent {
            id: 7,
            ev: Ev::Exit {
                code: Some(0),
                signal: None,
                truncated: false,
                timed_out: false,
            },
        };
        assert_eq!(decode::<FromAgent>(&encode(&e)).unwrap(), e);
        assert!(decode::<FromAgent>(b"\xff\xff\xff").is_err());
    }
}
