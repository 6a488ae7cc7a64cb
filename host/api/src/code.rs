//! Every error code the API answers, with its status and what it means: one table that both
//! the handlers build their errors from ([`crate::ApiError::new`] takes a [`Code`]) and the
//! OpenAPI document reads its error responses from, so a status cannot be answered by one and
//! described otherwise by the other.
//!
//! Each route names the codes it can answer with [`route_errors!`], beside its handler; the
//! document groups them by status ([`responses`]), every code of a status in its description.
//! The codes the router's layers add to many routes at once (auth, the web-page guards, a body
//! that is not JSON or too large) are added by `openapi.rs`, which knows those layers.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response;

/// Declares [`Code`] from its table: each code's status, its name on the wire, and what it
/// means (the document's description of it). One row per code, so none lacks a status or a
/// meaning, and [`Code::ALL`] cannot miss one.
macro_rules! codes {
    ($($variant:ident = ($status:ident, $name:literal, $meaning:literal),)+) => {
        /// An error code of the API: the `code` of `{"error":{"code","message"}}`, with its
        /// status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = concat!("`", $name, "`: ", $meaning)] $variant,)+
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &[Code] = &[$(Code::$variant),+];

            const fn spec(self) -> (StatusCode, &'static str, &'static str) {
                match self {
                    $(Code::$variant => (StatusCode::$status, $name, $meaning),)+
                }
            }
        }
    };
}

codes! {
    BadRequest = (BAD_REQUEST, "bad_request", "a bad path, query or body, with the reason"),
    SetupRejected = (BAD_REQUEST, "setup_rejected",
        "the sandbox refused the lease's set-up (a file path it cannot write)"),
    Unauthorized = (UNAUTHORIZED, "unauthorized",
        "the token is missing or wrong, or the lease of a lease token has ended"),
    Forbidden = (FORBIDDEN, "forbidden",
        "the token may not do this: an admin route for a tenant, or any route but its \
         lease's for a lease token"),
    ForbiddenOrigin = (FORBIDDEN, "forbidden_origin",
        "the request comes from a web page of another origin (or `Origin: null`)"),
    NotFound = (NOT_FOUND, "not_found", "no such route"),
    UnknownPool = (NOT_FOUND, "unknown_pool", "no pool has this name"),
    UnknownLease = (NOT_FOUND, "unknown_lease",
        "no live lease has this id (it never existed, was released, or expired)"),
    FileNotFound = (NOT_FOUND, "file_not_found", "nothing at this path in the container"),
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed",
        "the route does not take this method"),
    Conflict = (CONFLICT, "conflict",
        "a config reload changed the pool's sizes while the request was under way; nothing \
         changed"),
    LeaseSuspended = (CONFLICT, "lease_suspended",
        "the lease is suspended and its pool's `lease.on_suspended` is `refuse`: `POST \
         /v1/leases/{id}/resume` first"),
    CannotSuspend = (CONFLICT, "cannot_suspend",
        "the lease cannot be suspended: its engine cannot checkpoint (the message says why, \
         from the engine: no experimental mode, or a runtime that cannot), or calls on it are \
         under way"),
    ContainerGone = (GONE, "container_gone", "the lease's container died or was removed"),
    PayloadTooLarge = (PAYLOAD_TOO_LARGE, "payload_too_large",
        "the body is over the server's limit (`server.max_upload_bytes` for a file or an \
         archive; 1 MiB for all of a lease's files)"),
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "the body is not `application/json`: a POST must send `Content-Type: \
         application/json`, even with an empty body"),
    HostNotAllowed = (MISDIRECTED_REQUEST, "host_not_allowed",
        "the `Host` is not one this daemon answers to (DNS rebinding guard); \
         `server.allowed_hosts` adds names"),
    NoSuchEngine = (UNPROCESSABLE_ENTITY, "no_such_engine",
        "no engine carries the labels asked for"),
    Unsupported = (UNPROCESSABLE_ENTITY, "unsupported",
        "the pool cannot give what was asked (secrets from a pool without `exec: agent`, \
         cpus or memory from a pool without `resources:`)"),
    ConfigRejected = (UNPROCESSABLE_ENTITY, "config_rejected",
        "every problem of the new config; the old config keeps serving"),
    Unprocessable = (UNPROCESSABLE_ENTITY, "unprocessable", "the request could not be read"),
    OutOfBounds = (UNPROCESSABLE_ENTITY, "out_of_bounds",
        "what was asked is outside a bound, which `bound` names and the message names first: \
         a scale's `min_ready`, `max_ready`, `max_total` or `limits.max_containers`; a lease's \
         `resources.max_cpus`, `resources.max_memory`, `min_cpus` or `min_memory`; nothing \
         changed"),
    UpgradeRequired = (UPGRADE_REQUIRED, "upgrade_required",
        "the connection cannot be upgraded"),
    PoolExhausted = (TOO_MANY_REQUESTS, "pool_exhausted", "no container within the wait"),
    QuotaExceeded = (TOO_MANY_REQUESTS, "quota_exceeded",
        "a quota of the tenant refused the request; `quota` names it (`max_leases`, \
         `acquires_per_s`, `lease_seconds_per_hour`)"),
    NotImplemented = (NOT_IMPLEMENTED, "not_implemented",
        "this daemon has no config file to reload"),
    CreateFailed = (BAD_GATEWAY, "create_failed", "the cold create failed"),
    SetupFailed = (BAD_GATEWAY, "setup_failed",
        "applying the lease's set-up to its container failed"),
    EngineError = (BAD_GATEWAY, "engine_error", "the engine failed the operation"),
    PoolDegraded = (SERVICE_UNAVAILABLE, "pool_degraded",
        "the pool's creates keep failing and it is backing off, or no engine that is up has the \
         pool's runtime; the message says which"),
    EngineUnavailable = (SERVICE_UNAVAILABLE, "engine_unavailable",
        "no container engine answers (a lease on it is kept); each engine's state and last \
         error are at `/v1/engines`"),
    ShuttingDown = (SERVICE_UNAVAILABLE, "shutting_down",
        "the daemon is shutting down and opens no new leases"),
    LeaseNotRestoredYet = (SERVICE_UNAVAILABLE, "lease_not_restored_yet",
        "just after a restart, before the lease's engine is reconciled"),
    NotReady = (SERVICE_UNAVAILABLE, "not_ready",
        "starting, shutting down, or the control loop stopped"),
    StoreUnavailable = (SERVICE_UNAVAILABLE, "store_unavailable",
        "the state store did not take the change; nothing changed"),
    WarmUpTimeout = (GATEWAY_TIMEOUT, "warm_up_timeout",
        "the pool did not reach its target within the time asked"),
}

impl Code {
    /// The status it is answered with.
    pub const fn status(self) -> StatusCode {
        self.spec().0
    }

    /// Its name on the wire.
    pub const fn as_str(self) -> &'static str {
        self.spec().1
    }

    /// What it means, as the document says.
    pub const fn meaning(self) -> &'static str {
        self.spec().2
    }

    /// The code of this name.
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == name)
    }

    /// A retry may help: every answer of this status says when, in `Retry-After`.
    pub fn retryable(status: StatusCode) -> bool {
        matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The extension that carries an error response's codes while the document is assembled;
/// `openapi.rs` merges the codes of the router's layers in by it, then removes it.
pub const CODES_EXTENSION: &str = "x-error-codes";

/// The error responses of these codes, one per status, each naming all of its codes.
pub fn responses(codes: &[Code]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, BTreeSet<Code>> = BTreeMap::new();
    for &c in codes {
        by_status.entry(c.status().as_u16()).or_default().insert(c);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), RefOr::T(response(&codes))))
        .collect()
}

/// One error response: the codes of one status, their meanings, and `Retry-After` when a
/// retry may help (every such answer carries it, see [`crate::ApiError::new`]).
fn response(codes: &BTreeSet<Code>) -> Response {
    let description = codes
        .iter()
        .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
        .collect::<Vec<_>>()
        .join("; ");
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let mut r = json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
        CODES_EXTENSION: names,
    });
    if codes.first().is_some_and(|c| Code::retryable(c.status())) {
        r["headers"]["Retry-After"] = json!({
            "description": "Whole seconds to wait before trying again (rounded up)",
            "schema": { "type": "integer", "minimum": 1 },
        });
    }
    serde_json::from_value(r).expect("an error response of the code table")
}

/// Declares the type a route's `#[utoipa::path(responses(...))]` names for its error answers:
/// `route_errors!(Name = SET, ...)`, each `SET` a `&[Code]` or an array of codes. The document
/// gets one response per status, from [`responses`].
macro_rules! route_errors {
    ($(#[$attr:meta])* $vis:vis $name:ident = $($codes:expr),+ $(,)?) => {
        $(#[$attr])*
        $vis struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::code::responses(&[$(&$codes[..]),+].concat())
            }
        }
    };
}
pub(crate) use route_errors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_name_and_a_status_that_is_an_error() {
        let mut names = BTreeSet::new();
        for &c in Code::ALL {
            assert!(names.insert(c.as_str()), "{c} twice");
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "{c}"
            );
            assert_eq!(Code::from_name(c.as_str()), Some(c));
            assert!(!c.meaning().is_empty(), "{c}");
        }
    }

    #[test]
    fn one_response_per_status_naming_each_of_its_codes() {
        let r = responses(&[
            Code::EngineUnavailable,
            Code::UnknownLease,
            Code::LeaseNotRestoredYet,
            Code::UnknownLease,
        ]);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["404", "503"]);
        let v = serde_json::to_value(&r).unwrap();
        let d503 = v["503"]["description"].as_str().unwrap();
        assert!(d503.contains("`engine_unavailable`"), "{d503}");
        assert!(d503.contains("`lease_not_restored_yet`"), "{d503}");
        assert_eq!(
            v["503"][CODES_EXTENSION],
            json!(["engine_unavailable", "lease_not_restored_yet"])
        );
        assert!(v["503"]["headers"]["Retry-After"].is_object());
        assert!(v["404"]["headers"].is_null());
        assert_eq!(
            v["404"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}
