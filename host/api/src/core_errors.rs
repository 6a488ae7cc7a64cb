//! How the core's errors are answered: the code of each [`AcquireError`], [`LeaseError`],
//! [`WarmUpError`] and [`ScaleError`], and the set of codes each can become, which the routes that answer them
//! document (`route_errors!`). The unit tests hold every variant against its set.

use warmpool_core::{AcquireError, BackendError, LeaseError, ResizeError, ScaleError, WarmUpError};

use crate::ApiError;
use crate::code::Code;

/// Every code an acquire's [`AcquireError`] is answered with (the conversion below; the unit
/// tests check each variant against it).
pub const ACQUIRE_CODES: &[Code] = &[
    Code::UnknownPool,
    Code::PoolExhausted,
    Code::PoolDegraded,
    Code::EngineUnavailable,
    Code::ShuttingDown,
    Code::NoSuchEngine,
    Code::CreateFailed,
    Code::Unsupported,
    Code::OutOfBounds,
    Code::SetupRejected,
    Code::SetupFailed,
];

/// Every code a [`ResizeError`] is answered with: an operation on the lease, and the pool's
/// bounds (`unsupported` without `resources:`, `out_of_bounds` outside them).
pub const RESIZE_CODES: &[Code] = &[
    Code::UnknownLease,
    Code::LeaseNotRestoredYet,
    Code::ContainerGone,
    Code::EngineUnavailable,
    Code::FileNotFound,
    Code::BadRequest,
    Code::EngineError,
    Code::LeaseSuspended,
    Code::CannotSuspend,
    Code::Unsupported,
    Code::OutOfBounds,
];

/// Every code a [`LeaseError`] is answered with: what an operation in a lease's container can
/// answer.
pub const LEASE_CODES: &[Code] = &[
    Code::UnknownLease,
    Code::LeaseNotRestoredYet,
    Code::ContainerGone,
    Code::EngineUnavailable,
    Code::FileNotFound,
    Code::BadRequest,
    Code::EngineError,
    Code::LeaseSuspended,
    Code::CannotSuspend,
];

/// The codes of looking a lease up (`Manager::lease`, `renew`, `release`): the lease is not
/// there, or not back yet after a restart. These touch no engine.
pub const LOOKUP_CODES: &[Code] = &[Code::UnknownLease, Code::LeaseNotRestoredYet];

/// Every code a [`WarmUpError`] is answered with.
pub const WARM_UP_CODES: &[Code] = &[Code::UnknownPool, Code::WarmUpTimeout];

/// Every code a [`ScaleError`] is answered with.
pub const SCALE_CODES: &[Code] = &[
    Code::UnknownPool,
    Code::OutOfBounds,
    Code::Conflict,
    Code::StoreUnavailable,
    Code::NotReady,
    Code::ShuttingDown,
];

impl From<AcquireError> for ApiError {
    fn from(e: AcquireError) -> Self {
        let msg = e.to_string();
        match e {
            AcquireError::UnknownPool(_) => Self::new(Code::UnknownPool, msg),
            AcquireError::Exhausted { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..Self::new(Code::PoolExhausted, msg)
            },
            AcquireError::Degraded { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..Self::new(Code::PoolDegraded, msg)
            },
            AcquireError::EngineUnavailable(_) => Self::new(Code::EngineUnavailable, msg),
            AcquireError::ShuttingDown => Self::new(Code::ShuttingDown, msg),
            AcquireError::NoSuchEngine { .. } => Self::new(Code::NoSuchEngine, msg),
            AcquireError::Create { .. } => Self::new(Code::CreateFailed, msg),
            AcquireError::Unsupported { .. } => Self::new(Code::Unsupported, msg),
            AcquireError::Resources(e) => e.into(),
            // What the sandbox refused (a file path it cannot write) is the request's fault.
            AcquireError::Setup {
                source: BackendError::Invalid(_),
                ..
            } => Self::new(Code::SetupRejected, msg),
            AcquireError::Setup { .. } => Self::new(Code::SetupFailed, msg),
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        let msg = e.to_string();
        match e {
            LeaseError::UnknownLease(_) => Self::new(Code::UnknownLease, msg),
            LeaseError::NotRestoredYet { .. } => Self::new(Code::LeaseNotRestoredYet, msg),
            LeaseError::ContainerGone { .. } => Self::new(Code::ContainerGone, msg),
            LeaseError::EngineUnavailable { .. } => Self::new(Code::EngineUnavailable, msg),
            LeaseError::Suspended { .. } => Self::new(Code::LeaseSuspended, msg),
            LeaseError::CannotSuspend { .. } => Self::new(Code::CannotSuspend, msg),
            LeaseError::Backend { source, .. } => match source {
                BackendError::NotFound { what: "file", .. } => Self::new(Code::FileNotFound, msg),
                BackendError::NotFound { .. } => Self::new(Code::ContainerGone, msg),
                BackendError::Invalid(_) => Self::new(Code::BadRequest, msg),
                BackendError::Unavailable(_) => Self::new(Code::EngineUnavailable, msg),
                BackendError::Unsupported(_) => Self::new(Code::CannotSuspend, msg),
                _ => Self::new(Code::EngineError, msg),
            },
        }
    }
}

impl From<ResizeError> for ApiError {
    fn from(e: ResizeError) -> Self {
        match e {
            ResizeError::Lease(e) => e.into(),
            ResizeError::Resources(e) => e.into(),
        }
    }
}

impl From<WarmUpError> for ApiError {
    fn from(e: WarmUpError) -> Self {
        let msg = e.to_string();
        match e {
            WarmUpError::UnknownPool(_) => Self::new(Code::UnknownPool, msg),
            WarmUpError::Timeout { .. } => Self::new(Code::WarmUpTimeout, msg),
        }
    }
}

/// The codes of clearing an override: those of [`SCALE_CODES`] that need no sizes.
pub const UNSCALE_CODES: &[Code] = &[
    Code::UnknownPool,
    Code::StoreUnavailable,
    Code::NotReady,
    Code::ShuttingDown,
];

impl From<ScaleError> for ApiError {
    fn from(e: ScaleError) -> Self {
        let msg = e.to_string();
        match e {
            ScaleError::UnknownPool(_) => Self::new(Code::UnknownPool, msg),
            ScaleError::OutOfBounds { bound, .. } => {
                let mut e = Self::new(Code::OutOfBounds, msg);
                e.bound = Some(bound);
                e
            }
            ScaleError::Conflict(_) => Self::new(Code::Conflict, msg),
            ScaleError::Store(_) => Self::new(Code::StoreUnavailable, msg),
            ScaleError::NotReady => Self::new(Code::NotReady, msg),
            ScaleError::ShuttingDown => Self::new(Code::ShuttingDown, msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warmpool_core::ResourceError;

    use super::*;

    /// One of each core error, and each engine failure under a lease operation.
    fn every_core_error() -> (Vec<AcquireError>, Vec<LeaseError>, Vec<WarmUpError>) {
        let backend = || {
            vec![
                BackendError::Unavailable("refused".into()),
                BackendError::Image {
                    image: "i".into(),
                    message: "m".into(),
                },
                BackendError::Create {
                    image: "i".into(),
                    message: "m".into(),
                },
                BackendError::Setup {
                    container: "c".into(),
                    cmd: vec!["true".into()],
                    message: "m".into(),
                },
                BackendError::NotFound {
                    what: "file",
                    subject: "/x".into(),
                },
                BackendError::NotFound {
                    what: "container",
                    subject: "c".into(),
                },
                BackendError::Invalid("bad".into()),
                BackendError::Unsupported("no checkpoints".into()),
                BackendError::Operation {
                    stage: "exec start",
                    container: "c".into(),
                    message: "m".into(),
                },
            ]
        };
        let mut acquire = vec![
            AcquireError::UnknownPool("p".into()),
            AcquireError::Exhausted {
                pool: "p".into(),
                reason: "full".into(),
                retry_after: Duration::from_secs(1),
            },
            AcquireError::Degraded {
                pool: "p".into(),
                last_error: "e".into(),
                retry_after: Duration::from_secs(1),
            },
            AcquireError::EngineUnavailable("down".into()),
            AcquireError::NoSuchEngine {
                labels: Default::default(),
            },
            AcquireError::ShuttingDown,
            AcquireError::Unsupported {
                pool: "p".into(),
                reason: "r".into(),
            },
            AcquireError::Resources(ResourceError::NotAllowed { pool: "p".into() }),
            AcquireError::Resources(ResourceError::OutOfBounds {
                bound: "resources.max_memory",
                message: "m".into(),
            }),
        ];
        for source in backend() {
            acquire.push(AcquireError::Create {
                pool: "p".into(),
                source,
            });
        }
        for source in backend() {
            acquire.push(AcquireError::Setup {
                pool: "p".into(),
                source,
            });
        }
        let mut lease = vec![
            LeaseError::UnknownLease("l".into()),
            LeaseError::NotRestoredYet {
                lease: "l".into(),
                engines: "e".into(),
            },
            LeaseError::ContainerGone {
                lease: "l".into(),
                reason: "r".into(),
            },
            LeaseError::EngineUnavailable {
                lease: "l".into(),
                engine: "e".into(),
                reason: "r".into(),
            },
            LeaseError::Suspended { lease: "l".into() },
            LeaseError::CannotSuspend {
                lease: "l".into(),
                reason: "r".into(),
            },
        ];
        for source in backend() {
            lease.push(LeaseError::Backend {
                lease: "l".into(),
                source,
            });
        }
        let warm_up = vec![
            WarmUpError::UnknownPool("p".into()),
            WarmUpError::Timeout {
                pool: "p".into(),
                target: 1,
                waited: Duration::from_secs(1),
                ready: 0,
            },
        ];
        // No wildcard: a variant added to the core does not compile here until it is above.
        for e in &acquire {
            match e {
                AcquireError::UnknownPool(_)
                | AcquireError::Exhausted { .. }
                | AcquireError::Degraded { .. }
                | AcquireError::EngineUnavailable(_)
                | AcquireError::NoSuchEngine { .. }
                | AcquireError::ShuttingDown
                | AcquireError::Create { .. }
                | AcquireError::Unsupported { .. }
                | AcquireError::Resources(_)
                | AcquireError::Setup { .. } => {}
            }
        }
        for e in &lease {
            match e {
                LeaseError::UnknownLease(_)
                | LeaseError::NotRestoredYet { .. }
                | LeaseError::ContainerGone { .. }
                | LeaseError::EngineUnavailable { .. }
                | LeaseError::Suspended { .. }
                | LeaseError::CannotSuspend { .. }
                | LeaseError::Backend { .. } => {}
            }
        }
        for e in &warm_up {
            match e {
                WarmUpError::UnknownPool(_) | WarmUpError::Timeout { .. } => {}
            }
        }
        (acquire, lease, warm_up)
    }

    /// One of each [`ScaleError`].
    fn every_scale_error() -> Vec<ScaleError> {
        let v = vec![
            ScaleError::UnknownPool("p".into()),
            ScaleError::OutOfBounds {
                bound: "max_total",
                message: "m".into(),
            },
            ScaleError::Conflict("p".into()),
            ScaleError::Store("s".into()),
            ScaleError::NotReady,
            ScaleError::ShuttingDown,
        ];
        // No wildcard: a variant added to the core does not compile here until it is above.
        for e in &v {
            match e {
                ScaleError::UnknownPool(_)
                | ScaleError::OutOfBounds { .. }
                | ScaleError::Conflict(_)
                | ScaleError::Store(_)
                | ScaleError::NotReady
                | ScaleError::ShuttingDown => {}
            }
        }
        v
    }

    /// The code sets the routes document are exactly what the conversions answer: each core
    /// error becomes one of its set's codes, with that code's status, and each code of a set
    /// is answered by some error.
    #[test]
    fn each_core_error_is_answered_with_a_code_of_its_set() {
        fn check(what: &str, answers: Vec<ApiError>, set: &[Code]) {
            let mut seen = std::collections::BTreeSet::new();
            for a in answers {
                let code = Code::from_name(a.code).unwrap_or_else(|| panic!("{}", a.code));
                assert!(set.contains(&code), "{what}: {code} is not in its set");
                assert_eq!(a.status, code.status(), "{what}: {code}");
                seen.insert(code);
            }
            for c in set {
                assert!(
                    seen.contains(c),
                    "{what}: {c} is in the set but never answered"
                );
            }
        }
        let (acquire, lease, warm_up) = every_core_error();
        check(
            "acquire",
            acquire.into_iter().map(ApiError::from).collect(),
            ACQUIRE_CODES,
        );
        check(
            "lease",
            lease.into_iter().map(ApiError::from).collect(),
            LEASE_CODES,
        );
        check(
            "warm-up",
            warm_up.into_iter().map(ApiError::from).collect(),
            WARM_UP_CODES,
        );
        check(
            "scale",
            every_scale_error()
                .into_iter()
                .map(ApiError::from)
                .collect(),
            SCALE_CODES,
        );
        for c in LOOKUP_CODES {
            assert!(LEASE_CODES.contains(c), "{c}");
        }
        for c in UNSCALE_CODES {
            assert!(SCALE_CODES.contains(c), "{c}");
        }
        // A resize answers what a lease operation does, and the pool's refusals.
        let (_, lease, _) = every_core_error();
        let mut resize: Vec<ApiError> = lease
            .into_iter()
            .map(|e| ResizeError::Lease(e).into())
            .collect();
        resize.push(ResizeError::Resources(ResourceError::NotAllowed { pool: "p".into() }).into());
        let out: ApiError = ResizeError::Resources(ResourceError::OutOfBounds {
            bound: "resources.max_cpus",
            message: "m".into(),
        })
        .into();
        assert_eq!(out.bound, Some("resources.max_cpus"));
        resize.push(out);
        check("resize", resize, RESIZE_CODES);
    }
}
