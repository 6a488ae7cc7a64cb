//! Errors at the core's boundary. Each variant names the stage and the subject, and maps to one
//! HTTP status in `warmpool-api`.

use std::time::Duration;

use crate::backend::{BackendError, ResourceError};

/// Why an acquire got no lease.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    /// No pool has this name.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// No container became available: the exhaustion strategy refused, or the wait timed out.
    #[error("pool {pool:?} exhausted: {reason}")]
    Exhausted {
        /// The pool the acquire asked for.
        pool: String,
        /// Why, from the exhaustion strategy or the wait.
        reason: String,
        /// When the client should try again (sent as `Retry-After`).
        retry_after: Duration,
    },
    /// The pool's create breaker is open (creates keep failing), or no engine that is up has
    /// the pool's runtime.
    #[error("pool {pool:?} is degraded: {last_error}")]
    Degraded {
        /// The pool the acquire asked for.
        pool: String,
        /// Why: the pool's last create failure, or the runtime no engine has.
        last_error: String,
        /// Time left on the create back-off.
        retry_after: Duration,
    },
    /// The container engine cannot be reached; holds the last error.
    #[error("container engine unavailable: {0}")]
    EngineUnavailable(String),
    /// No engine carries the labels the acquire asked for.
    #[error("no engine has the labels {labels:?}")]
    NoSuchEngine {
        /// The labels asked for.
        labels: std::collections::BTreeMap<String, String>,
    },
    /// The daemon is shutting down and opens no new leases.
    #[error("daemon is shutting down")]
    ShuttingDown,
    /// The cold create made for this acquire failed.
    #[error("cold create for pool {pool:?} failed: {source}")]
    Create {
        /// The pool the acquire asked for.
        pool: String,
        /// The backend's error.
        source: BackendError,
    },
    /// The acquire asked for what the pool cannot give (secrets from a pool without the
    /// agent).
    #[error("pool {pool:?}: {reason}")]
    Unsupported {
        /// The pool the acquire asked for.
        pool: String,
        /// Why.
        reason: String,
    },
    /// The cpus or memory asked for are not allowed by the pool, or outside its bounds; no
    /// container was taken.
    #[error(transparent)]
    Resources(ResourceError),
    /// The lease's environment, secrets or files could not be applied to its container (which
    /// is destroyed, never lent to anyone).
    #[error("pool {pool:?}: setting the sandbox up for the lease failed: {source}")]
    Setup {
        /// The pool the acquire asked for.
        pool: String,
        /// The backend's error.
        source: BackendError,
    },
}

/// Why an operation on a lease failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// No live lease has this ID (it never existed, was released, or expired).
    #[error("unknown lease {0:?}")]
    UnknownLease(String),
    /// No live lease has this ID yet, but it may be one the state store holds on an engine
    /// whose startup reconcile has not run (the daemon just restarted, or that engine has not
    /// answered since): ask again.
    #[error(
        "lease {lease:?} is not known yet: leases on engine(s) {engines} are being restored after a restart"
    )]
    NotRestoredYet {
        /// The lease ID.
        lease: String,
        /// The engines not reconciled yet, comma-separated.
        engines: String,
    },
    /// The lease's container died while leased.
    #[error("the container of lease {lease:?} is gone: {reason}")]
    ContainerGone {
        /// The lease ID.
        lease: String,
        /// Why it stopped, as the engine reported it.
        reason: String,
    },
    /// The engine that holds the lease's container is down; the lease is kept and works again
    /// when the engine returns.
    #[error("lease {lease:?}: engine {engine:?} is unavailable: {reason}")]
    EngineUnavailable {
        /// The lease ID.
        lease: String,
        /// The engine's name.
        engine: String,
        /// The engine's last error.
        reason: String,
    },
    /// The lease is suspended and its pool's `lease.on_suspended` is `refuse`: only a resume
    /// wakes it.
    #[error("lease {lease:?} is suspended; resume it first (POST /v1/leases/{lease}/resume)")]
    Suspended {
        /// The lease ID.
        lease: String,
    },
    /// The lease cannot be suspended: its engine cannot checkpoint (the reason says why, in
    /// the engine's words where it gave some), or calls on it are under way.
    #[error("lease {lease:?} cannot be suspended: {reason}")]
    CannotSuspend {
        /// The lease ID.
        lease: String,
        /// Why not.
        reason: String,
    },
    /// The backend failed the operation on the lease's container.
    #[error("lease {lease:?}: {source}")]
    Backend {
        /// The lease ID.
        lease: String,
        /// The backend's error.
        source: BackendError,
    },
}

/// Why a warm-up did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmUpError {
    /// No pool has this name.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// The pool did not reach its target of ready containers in time.
    #[error(
        "pool {pool:?} did not reach its target of {target} ready within {waited:?} ({ready} ready)"
    )]
    Timeout {
        /// The pool warmed up.
        pool: String,
        /// Ready containers it aimed for.
        target: u32,
        /// Ready containers it had at the deadline.
        ready: u32,
        /// How long the warm-up waited.
        waited: Duration,
    },
}

/// Why a scale override was not set or cleared; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScaleError {
    /// No pool has this name.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// The sizes asked for are outside a bound; the message starts with its name.
    #[error("{bound}: {message}")]
    OutOfBounds {
        /// The bound: `min_ready`, `max_ready`, `max_total` or `limits.max_containers`.
        bound: &'static str,
        /// What is outside it, with the numbers.
        message: String,
    },
    /// A config reload changed the pool's sizes while the request was under way.
    #[error("pool {0:?}: a config reload changed its sizes meanwhile; nothing changed, ask again")]
    Conflict(String),
    /// The state store did not take the change.
    #[error("the state store did not take the change, nothing changed: {0}")]
    Store(String),
    /// Just after a start, before the overrides the store held are back.
    #[error("starting: the state store's scale overrides are not restored yet")]
    NotReady,
    /// The daemon is shutting down.
    #[error("daemon is shutting down")]
    ShuttingDown,
}

/// Why a lease's resources were not changed (`PATCH /v1/leases/{id}`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResizeError {
    /// The lease is not there, or the engine failed the update (the lease keeps the limits it
    /// showed, and its container is put back to the pool's, or destroyed, when it ends).
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The ask is not allowed by the pool, or outside its bounds; nothing changed.
    #[error(transparent)]
    Resources(#[from] ResourceError),
}
