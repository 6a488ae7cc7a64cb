//! The seam between the pool core and whatever runs containers.
//!
//! Like deadpool's `Manager` or bb8's `ManageConnection`, a [`Backend`] knows how to make, use and
//! destroy one container; the pool core decides when. The Docker backend (`warmpool-docker`) is one
//! implementation, the in-memory fake of `warmpool-testkit` another.
//!
//! The core names every container before it asks for it ([`Backend::create`] takes the name), so
//! a container the engine made is always one the core can account for, even when the create's
//! answer never arrives: a failed or timed-out create is followed by a removal of that name.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warmpool_policy::{Probe, ProbeResult};

/// What to run for one pool: image and container settings. Serialised (stably, via `BTreeMap`s)
/// to hash the `warmpool.spec` label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    /// Image reference to run (`repo[:tag]` or a digest); pulled when missing.
    pub image: String,
    /// Command the container runs, as argv (the config's default is `sleep infinity`).
    pub cmd: Vec<String>,
    /// Environment variables of the container.
    pub env: BTreeMap<String, String>,
    /// Working directory of the container; `None`: the image's.
    pub workdir: Option<String>,
    /// User the container runs as (`user[:group]`, by name or ID); `None`: the image's.
    pub user: Option<String>,
    /// Extra labels on each container; the `warmpool.*` keys are reserved for the daemon.
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    /// Most processes the container may run at once; `None`: the engine's default.
    pub pids_limit: Option<i64>,
    /// Docker network mode; `none` by default so a sandbox cannot reach anything.
    pub network: String,
    /// Mount the root filesystem read-only; the container then gets a private `/tmp` tmpfs.
    pub read_only: bool,
    /// Hardening, loosened per pool only on purpose.
    pub init: bool,
    /// Linux capabilities dropped (the config's default is `ALL`).
    pub cap_drop: Vec<String>,
    /// Linux capabilities added back after `cap_drop`.
    pub cap_add: Vec<String>,
    /// Set `no-new-privileges`, so setuid binaries cannot gain privileges.
    pub no_new_privileges: bool,
    /// Commands that must each exit 0 before the container counts as ready.
    pub setup: Vec<Vec<String>>,
    /// Bound on each setup command.
    #[serde(skip)]
    pub setup_timeout: Duration,
}

impl ContainerSpec {
    /// What the `warmpool.spec` label holds: 16 hex digits of sha256 over the spec (as stable
    /// JSON) and the image ID. A container is re-adopted at restart only when its label equals
    /// the fingerprint of the pool's current spec and the image's current ID.
    pub fn fingerprint(&self, image_id: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("a spec always serialises"));
        h.update(b"\0");
        h.update(image_id.as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// The tmpfs mounts a client can write to: `/dev/shm` always, `/dev/mqueue` for POSIX
    /// message queues, and the private `/tmp` a read-only root gets. A reuse empties them all.
    pub fn tmpfs_paths(&self) -> Vec<String> {
        let mut v = vec!["/dev/shm".to_string(), "/dev/mqueue".to_string()];
        if self.read_only {
            v.push("/tmp".into());
        }
        v
    }
}

/// What [`Backend::mark_used`] appends to a container's name: the engine-side mark of a
/// container that was leased once. Backends strip it again in [`Existing::name`].
pub const USED_SUFFIX: &str = "-leased";

/// A container of this daemon's host id that the engine already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// The engine's container ID.
    pub id: String,
    /// The name as the core chose it, without the engine-side "used" mark.
    pub name: String,
    /// The `warmpool.pool` label, if any.
    pub pool: Option<String>,
    /// The `warmpool.spec` label, if any.
    pub fingerprint: Option<String>,
    /// The image reference the container was created from.
    pub image: String,
    /// The ID of the image the container runs.
    pub image_id: String,
    /// Whether the container is running now.
    pub running: bool,
    /// The engine-side mark [`Backend::mark_used`] leaves: this container was leased once.
    pub used: bool,
    /// When the engine created the container (whole seconds).
    pub created: SystemTime,
}

/// A container the backend made; the pool core tracks it by `name` (which it chose) and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The engine's container ID.
    pub id: String,
    /// The name the core chose and asked for.
    pub name: String,
    /// The image reference and the image ID it resolved to at create time.
    pub image: String,
    /// The ID `image` resolved to when the container was created.
    pub image_id: String,
}

/// A command to run in a leased container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command, as argv; must not be empty.
    pub cmd: Vec<String>,
    /// Bytes written to the command's stdin, which is then closed; `None`: no stdin.
    pub stdin: Option<Vec<u8>>,
    /// Extra environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// Working directory of the command; `None`: the container's.
    pub workdir: Option<String>,
    /// Longest the command may run before its process tree is killed; zero: the
    /// backend's default.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr; the rest is dropped and flagged.
    pub output_limit: usize,
}

/// What an exec produced. Output is kept byte for byte; the API decides how to encode it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the command timed out before it exited.
    pub exit_code: Option<i64>,
    /// The command's stdout, at most `output_limit` bytes.
    pub stdout: Vec<u8>,
    /// The command's stderr, at most `output_limit` bytes.
    pub stderr: Vec<u8>,
    /// The command outlived its timeout and was killed.
    pub timed_out: bool,
    /// Stdout or stderr went past `output_limit`; the excess was dropped.
    pub truncated: bool,
    /// How long the exec took, in milliseconds.
    pub duration_ms: u64,
}

/// A file's bytes crossing the seam, streamed: a large file is never held whole in the daemon.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BackendError>> + Send>>;

/// A file to write or a file read: its length and its bytes.
pub struct FileBody {
    /// The body's length, in bytes.
    pub len: u64,
    /// The bytes, as a stream of chunks.
    pub body: ByteStream,
}

impl FileBody {
    /// A body from bytes already in memory.
    pub fn from_bytes(data: Vec<u8>) -> Self {
        let len = data.len() as u64;
        Self {
            len,
            body: Box::pin(futures_util::stream::once(std::future::ready(Ok(
                Bytes::from(data),
            )))),
        }
    }

    /// Read the whole body into memory (tests, and the fake backend).
    pub async fn collect(self) -> Result<Vec<u8>, BackendError> {
        use futures_util::StreamExt;
        let mut out = Vec::with_capacity(self.len.min(1 << 20) as usize);
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody").field("len", &self.len).finish()
    }
}

/// How a path differs from the image, as the engine's `docker diff` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The path was changed (`C`).
    Modified,
    /// The path was added (`A`).
    Added,
    /// The path was deleted (`D`).
    Deleted,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Modified => "C",
            ChangeKind::Added => "A",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One filesystem change against the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsChange {
    /// How the path differs from the image.
    pub kind: ChangeKind,
    /// Absolute path inside the container.
    pub path: String,
}

/// What a container looked like when it first became ready, before any client touched it. A
/// reuse compares the container with it: whatever differs was left by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The processes running then, as the engine lists them (so no program inside the container
    /// can forge the list).
    pub processes: Vec<String>,
    /// Filesystem changes against the image then: what setup wrote.
    pub changes: Vec<FsChange>,
    /// The container's clock then, in ticks since boot: a process started later is a client's.
    pub started_before: u64,
}

/// Something a client left behind that a scrub did not remove.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Residue {
    /// A process that was not running when the container first became ready.
    Process(String),
    /// A file or directory added, removed or changed since the baseline.
    Path(FsChange),
    /// A tmpfs mount that is not empty.
    Tmpfs {
        /// The mount point, e.g. `/dev/shm`.
        mount: String,
        /// Names of the entries directly under it.
        entries: Vec<String>,
    },
}

impl fmt::Display for Residue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Residue::Process(p) => write!(f, "process {p}"),
            Residue::Path(c) => write!(f, "{} {}", c.kind, c.path),
            Residue::Tmpfs { mount, entries } => write!(f, "{mount} holds {}", entries.join(", ")),
        }
    }
}

/// Something the backend noticed on its own (not in answer to a call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    /// The container stopped running (died, was killed, OOM, removed behind our back).
    Died {
        /// The engine's container ID.
        id: String,
        /// What the engine reported: the event (`die`, `oom`) and the exit code, if any.
        reason: String,
    },
}

/// Errors a backend reports. Each names the stage and its subject.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The engine could not be reached; holds the transport error.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    /// An image could not be pulled or inspected.
    #[error("image {image}: {message}")]
    Image {
        /// The image reference.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// A container could not be created or started, or stopped right after it started.
    #[error("create container for image {image}: {message}")]
    Create {
        /// The image the container was to run.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// A setup command could not run, or did not exit 0.
    #[error("setup command {cmd:?} in {container} failed: {message}")]
    Setup {
        /// ID of the container being set up.
        container: String,
        /// The failing command, as argv.
        cmd: Vec<String>,
        /// Why it failed: the exec's error, or the exit code and output.
        message: String,
    },
    /// The thing asked about does not exist.
    #[error("{what} not found: {subject}")]
    NotFound {
        /// What kind of thing: `container` or `file`.
        what: &'static str,
        /// Which one: a container ID or name, or a path.
        subject: String,
    },
    /// A request the backend refuses (a bad path, an empty command, a bad archive); holds why.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Any other engine call failed.
    #[error("{stage} on {container}: {message}")]
    Operation {
        /// The call that failed, e.g. `exec start`.
        stage: &'static str,
        /// The container (ID or name) the call was about.
        container: String,
        /// The engine's error.
        message: String,
    },
}

/// Check that `path` is absolute, names a file, and has no `..` segment and no NUL byte; return
/// it without the leading `/`.
pub fn checked_path(path: &str) -> Result<&str, BackendError> {
    if !path.starts_with('/') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must be absolute"
        )));
    }
    if path.contains('\0') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must not contain a NUL byte"
        )));
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must not contain '..'"
        )));
    }
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.ends_with('/') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must name a file"
        )));
    }
    Ok(rel)
}

/// Makes, uses and destroys containers. All methods are called off the acquire fast path, and
/// the core bounds each call with its own deadline, so a backend that hangs cannot stall a loop.
pub trait Backend: Send + Sync + 'static {
    /// Create, start and set up container `name` for `pool`, pulling the image if it is
    /// missing. Succeeds only if the container is running at the end: a container that exited
    /// is an error that says its exit code and last log lines.
    fn create(
        &self,
        pool: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<Created, BackendError>> + Send;

    /// Remove a container, by ID or by name, at once (force, no stop grace). `Ok` means the
    /// engine no longer has it: removing a missing container is not an error.
    fn destroy(&self, id_or_name: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Mark container `id` (created as `name`) on the engine as leased once, in a way nothing
    /// inside the container can undo. Idempotent. At restart a marked container without a
    /// lease is never re-adopted ([`Existing::used`]).
    fn mark_used(
        &self,
        id: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Run a command in a container. When it times out, or when the returned future is dropped
    /// before it finishes (its client went away), the command's whole process tree is killed.
    fn exec(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> impl Future<Output = Result<ExecOutput, BackendError>> + Send;

    /// Write a file at an absolute path inside the container, creating parent directories.
    fn put_file(
        &self,
        id: &str,
        path: &str,
        file: FileBody,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Read a regular file at an absolute path inside the container, as a stream.
    fn get_file(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<FileBody, BackendError>> + Send;

    /// Run one health probe against a container.
    fn probe(&self, id: &str, probe: &Probe) -> impl Future<Output = ProbeResult> + Send;

    /// The ID `image` resolves to now, or `None` when the engine does not have it. Never pulls.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;

    /// Is the engine reachable?
    fn ping(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Every container this daemon instance's labels mark as its own, running or not.
    fn list(&self) -> impl Future<Output = Result<Vec<Existing>, BackendError>> + Send;

    /// Remove every container this daemon instance's labels mark as its own, returning how many.
    /// Called at startup without a state store, and as the last step of shutdown.
    fn sweep(&self) -> impl Future<Output = Result<usize, BackendError>> + Send;

    /// Forward [`BackendEvent`]s to `tx` until `cancel` fires, reconnecting as needed.
    fn watch(
        &self,
        tx: mpsc::Sender<BackendEvent>,
        cancel: CancellationToken,
    ) -> impl Future<Output = ()> + Send;

    /// Why a container stopped: its exit code and last log lines, best effort, for the pool's
    /// `last_error` when containers die young.
    fn exit_report(&self, id: &str) -> impl Future<Output = String> + Send;

    /// `Ok` if the container is running now; otherwise an error saying why it stopped (its exit
    /// code and last log lines). The core asks once a new container has had a moment to settle,
    /// so a command that exits right after it starts is caught before any client sees it.
    fn check_running(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Record what container `id` looks like now, while no client has touched it.
    fn baseline(&self, id: &str) -> impl Future<Output = Result<Baseline, BackendError>> + Send;

    /// Before a reuse: kill every process started after `baseline` and empty the tmpfs mounts
    /// `tmpfs`. Best effort; [`Backend::residue`] checks the result.
    fn scrub(
        &self,
        id: &str,
        baseline: &Baseline,
        tmpfs: &[String],
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What differs from `baseline` now: processes, filesystem changes (changed directories
    /// whose children are all reverted do not count), and non-empty tmpfs mounts. Read through
    /// the engine, never through a program the client could have replaced, wherever it can be.
    fn residue(
        &self,
        id: &str,
        baseline: &Baseline,
        tmpfs: &[String],
    ) -> impl Future<Output = Result<Vec<Residue>, BackendError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::checked_path;

    #[test]
    fn paths_must_be_absolute_files_without_dotdot_or_nul() {
        assert_eq!(checked_path("/tmp/a.txt").unwrap(), "tmp/a.txt");
        assert!(checked_path("tmp/a").is_err());
        assert!(checked_path("/tmp/../etc/passwd").is_err());
        assert!(checked_path("/").is_err());
        assert!(checked_path("/tmp/").is_err());
        assert!(checked_path("/\0").is_err());
        assert!(checked_path("/etc/passwd\0.txt").is_err());
        assert!(checked_path("/a..b").is_ok());
    }
}
