//! The seam between the pool core and whatever runs containers.
//!
//! Like deadpool's `Manager` or bb8's `ManageConnection`, a [`Backend`] knows how to make, use and
//! destroy one container; the pool core decides when. The Docker backend (`warmpool-docker`) is one
//! implementation, the in-memory fake of `warmpool-fake` another.
//!
//! The core names every container before it asks for it ([`Backend::create`] takes the name), so
//! a container the engine made is always one the core can account for, even when the create's
//! answer never arrives: a failed or timed-out create is followed by a removal of that name.
//!
//! This file holds the trait, its events and its errors; the data crossing it is in
//! `backend/spec.rs` (what a pool runs, what the engine holds), `backend/exec.rs` (commands and
//! files) and `backend/residue.rs` (what reuse compares).

use std::future::Future;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warmpool_policy::{Probe, ProbeResult};

mod exec;
mod residue;
mod resources;
mod session;
mod spec;

pub use exec::{ByteStream, ExecOutput, ExecRequest, FileBody, Stop, checked_path};
pub use residue::{Baseline, ChangeKind, FsChange, Place, PlaceKind, Residue};
pub use resources::{
    MIN_MEMORY, MIN_NANO_CPUS, ResourceBounds, ResourceError, Resources, parse_size,
};
pub use session::{
    ExecEvent, ExecInput, ExecSession, ExitStatus, LeaseSetup, Secret, SetupFile, TermSize,
};
pub use spec::{ContainerSpec, Created, ExecMode, Existing, ImageSource, USED_SUFFIX};

/// What an engine says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineDescription {
    /// The engine's version, e.g. `20.10.24`.
    pub version: Option<String>,
    /// The API version the client speaks with it (negotiated).
    pub api_version: Option<String>,
    /// Tagged images it holds (`repo:tag`), sorted.
    pub images: Vec<String>,
    /// The image copy into this engine under way, or the last one, with its progress.
    pub image_copy: Option<String>,
}

/// The OCI runtimes an engine can run containers with, as the engine says (Docker's
/// `GET /info`). A pool that names a runtime is placed only on engines listing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Runtimes {
    /// Every runtime registered there (`runc`, `runsc`, …), sorted.
    pub names: Vec<String>,
    /// The one a container gets when its pool names none.
    pub default: Option<String>,
}

impl Runtimes {
    /// Whether `name` is registered.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
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
    /// The engine cannot do this at all (it said so, or its settings say so): checkpoints on
    /// an engine without experimental mode, or with a runtime that cannot checkpoint. Holds
    /// the reason, in the engine's words where it gave some.
    #[error("not supported by the engine: {0}")]
    Unsupported(String),
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

/// Where a container stands after a suspend or resume whose answer was an error (or never
/// came): what the core settles the lease on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hibernation {
    /// Running: a suspend did not stop it, or a resume brought it back after all.
    Running,
    /// Stopped, with the checkpoint a resume restores on disk.
    Checkpointed,
    /// Stopped without a checkpoint (or gone): its memory is lost.
    Lost,
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

    /// Start a command as a session: output as it comes, input as it is given, optionally
    /// under a terminal (`req.tty`). The session answers once the command started (or failed
    /// to); `req.stop`, or dropping the session, kills its whole tree.
    fn exec_session(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> impl Future<Output = Result<ExecSession, BackendError>> + Send;

    /// Apply a lease's environment, secrets, working directory and files to its container,
    /// before the lease is handed out; every later exec and session of the container runs with
    /// them, until [`Backend::scrub`] forgets them.
    fn lease_setup(
        &self,
        id: &str,
        setup: &LeaseSetup,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Unpack a tar stream into the directory at an absolute path, creating it.
    fn put_tar(
        &self,
        id: &str,
        dir: &str,
        body: ByteStream,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// A directory (or a file) at an absolute path, as a tar stream.
    fn get_tar(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<ByteStream, BackendError>> + Send;

    /// Set container `id`'s CPU and memory limits to `r`, live (the container keeps running).
    /// A `None` CPU limit leaves the container's as it is (the core only asks for one when the
    /// pool has its own to go back to); memory sets swap to the same value. Used for a lease's
    /// own resources and to put the pool's back before a reuse.
    fn update_resources(
        &self,
        id: &str,
        r: Resources,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Run one health probe against a container.
    fn probe(&self, id: &str, probe: &Probe) -> impl Future<Output = ProbeResult> + Send;

    /// The ID `image` resolves to now, or `None` when the engine does not have it. Never pulls.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;

    /// Is the engine reachable?
    fn ping(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What the engine says of itself (version, images), for `GET /v1/engines`. Best effort;
    /// a backend with nothing to say keeps the default.
    fn describe(&self) -> impl Future<Output = Result<EngineDescription, BackendError>> + Send {
        async { Ok(EngineDescription::default()) }
    }

    /// The OCI runtimes the engine has registered. The core reads them when the engine comes
    /// up and again now and then (an engine may register one while it runs), and places a pool
    /// that names a runtime only where it is listed.
    fn runtimes(&self) -> impl Future<Output = Result<Runtimes, BackendError>> + Send;
    /// Checkpoint running container `id` to the engine's disk and stop it, so it holds no
    /// memory and a [`Backend::resume`] brings its processes back where they were. An engine
    /// that cannot (no checkpoint support, a runtime that cannot) answers
    /// [`BackendError::Unsupported`] with its reason, the container still running.
    fn suspend(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = id;
        async {
            Err(BackendError::Unsupported(
                "this backend cannot checkpoint containers".into(),
            ))
        }
    }

    /// Restore container `id` from the checkpoint [`Backend::suspend`] left, and drop the
    /// checkpoint. The lease's set-up (environment, secrets, files) is what it was.
    fn resume(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = id;
        async {
            Err(BackendError::Unsupported(
                "this backend cannot restore containers".into(),
            ))
        }
    }

    /// Where container `id` stands, after a suspend or resume failed: running, stopped with a
    /// checkpoint, or lost. An engine that cannot be reached answers an error.
    fn hibernation(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Hibernation, BackendError>> + Send {
        let _ = id;
        async { Ok(Hibernation::Running) }
    }

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

    /// Record what container `id` looks like now, while no client has touched it: its
    /// processes, its filesystem changes, and every writable place outside the image's layer
    /// ([`Baseline::places`]). A place the backend cannot cover is an error: such a container
    /// is never reused.
    fn baseline(&self, id: &str) -> impl Future<Output = Result<Baseline, BackendError>> + Send;

    /// Before a reuse: kill every process started after `baseline` and empty the places that
    /// were empty then ([`PlaceKind::Emptied`]). Any step that cannot finish is an error (the
    /// container is then destroyed); [`Backend::residue`] checks the result.
    fn scrub(
        &self,
        id: &str,
        baseline: &Baseline,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What differs from `baseline` now: processes, filesystem changes (a changed directory
    /// counts when its mode or owner changed; its children have their own entries), and every
    /// place of [`Baseline::places`]. Read through the engine, never through a program the
    /// client could have replaced, wherever it can be; what must be read from inside is read
    /// only once the engine shows the container's programs untouched. A place that cannot be
    /// read whole (a listing that fails, times out or is cut short) is an error, never an
    /// empty answer.
    fn residue(
        &self,
        id: &str,
        baseline: &Baseline,
    ) -> impl Future<Output = Result<Vec<Residue>, BackendError>> + Send;
}
