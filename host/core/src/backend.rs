//! The seam between the pool core and whatever runs containers.
//!
//! Like deadpool's `Manager` or bb8's `ManageConnection`, a [`Backend`] knows how to make, use and
//! destroy one container; the pool core decides when. The Docker backend (`warmpool-docker`) is one
//! implementation, the in-memory [`crate::fake::FakeBackend`] another.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warmpool_policy::{Probe, ProbeResult};

/// What to run for one pool: image and container settings. Serialised (stably, via `BTreeMap`s)
/// to hash the `warmpool.spec` label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub image: String,
    pub cmd: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Docker network mode; `none` by default so a sandbox cannot reach anything.
    pub network: String,
    pub read_only: bool,
    /// Hardening, loosened per pool only on purpose.
    pub init: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
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
}

/// A container of this daemon's host id that the engine already has (found at startup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub id: String,
    pub name: String,
    /// The `warmpool.pool` label, if any.
    pub pool: Option<String>,
    /// The `warmpool.spec` label, if any.
    pub fingerprint: Option<String>,
    pub image: String,
    pub image_id: String,
    pub running: bool,
    pub created: SystemTime,
}

/// A container the backend made; the pool core tracks it by `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    pub name: String,
    /// The image reference and the image ID it resolved to at create time.
    pub image: String,
    pub image_id: String,
}

/// A command to run in a leased container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr; the rest is dropped and flagged.
    pub output_limit: usize,
}

/// What an exec produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    /// `None` when the command timed out before it exited.
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub truncated: bool,
    pub duration_ms: u64,
}

/// Something the backend noticed on its own (not in answer to a call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    /// The container stopped running (died, was killed, OOM, removed behind our back).
    Died { id: String, reason: String },
}

/// Errors a backend reports. Each names the stage and its subject.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("create container for image {image}: {message}")]
    Create { image: String, message: String },
    #[error("setup command {cmd:?} in {container} failed: {message}")]
    Setup {
        container: String,
        cmd: Vec<String>,
        message: String,
    },
    #[error("{what} not found: {subject}")]
    NotFound { what: &'static str, subject: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{stage} on {container}: {message}")]
    Operation {
        stage: &'static str,
        container: String,
        message: String,
    },
}

/// Check that `path` is absolute and free of `..`; return it without the leading `/`.
pub fn checked_path(path: &str) -> Result<&str, BackendError> {
    if !path.starts_with('/') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must be absolute"
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

/// Makes, uses and destroys containers. All methods are called off the acquire fast path.
pub trait Backend: Send + Sync + 'static {
    /// Create, start and set up one container for `pool`. Pull the image if it is missing.
    fn create(
        &self,
        pool: &str,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<Created, BackendError>> + Send;

    /// Remove a container at once (force, no stop grace). Removing a missing one is not an error.
    fn destroy(&self, id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Run a command in a container.
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
        data: Vec<u8>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Read a regular file at an absolute path inside the container.
    fn get_file(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<Vec<u8>, BackendError>> + Send;

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
    /// Called at startup (the daemon owns none yet) and as the last step of shutdown.
    fn sweep(&self) -> impl Future<Output = Result<usize, BackendError>> + Send;

    /// Forward [`BackendEvent`]s to `tx` until `cancel` fires, reconnecting as needed.
    fn watch(
        &self,
        tx: mpsc::Sender<BackendEvent>,
        cancel: CancellationToken,
    ) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::checked_path;

    #[test]
    fn paths_must_be_absolute_files_without_dotdot() {
        assert_eq!(checked_path("/tmp/a.txt").unwrap(), "tmp/a.txt");
        assert!(checked_path("tmp/a").is_err());
        assert!(checked_path("/tmp/../etc/passwd").is_err());
        assert!(checked_path("/").is_err());
        assert!(checked_path("/tmp/").is_err());
        assert!(checked_path("/a..b").is_ok());
    }
}
