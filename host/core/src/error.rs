//! Errors at the core's boundary. Each variant names the stage and the subject, and maps to one
//! HTTP status in `warmpool-api`.

use std::time::Duration;

use crate::backend::BackendError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    #[error("pool {pool:?} exhausted: {reason}")]
    Exhausted {
        pool: String,
        reason: String,
        retry_after: Duration,
    },
    #[error("pool {pool:?} is degraded, creates keep failing: {last_error}")]
    Degraded {
        pool: String,
        last_error: String,
        retry_after: Duration,
    },
    #[error("container engine unavailable: {0}")]
    EngineUnavailable(String),
    #[error("daemon is shutting down")]
    ShuttingDown,
    #[error("cold create for pool {pool:?} failed: {source}")]
    Create { pool: String, source: BackendError },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    #[error("unknown lease {0:?}")]
    UnknownLease(String),
    #[error("the container of lease {lease:?} is gone: {reason}")]
    ContainerGone { lease: String, reason: String },
    #[error("lease {lease:?}: {source}")]
    Backend { lease: String, source: BackendError },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmUpError {
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    #[error(
        "pool {pool:?} did not reach its target of {target} ready within {waited:?} ({ready} ready)"
    )]
    Timeout {
        pool: String,
        target: u32,
        ready: u32,
        waited: Duration,
    },
}
