//! A lease's own CPU and memory: the `cpus` and `memory` of an acquire's body, and
//! `PATCH /v1/leases/{id}`, which changes them on a live lease. The pool's `resources:` bounds
//! them; an ask outside them is a 422 `out_of_bounds` whose `bound` names the one broken
//! (`resources.max_cpus`, `resources.max_memory`, or the engine's floors `min_cpus` and
//! `min_memory`), and a pool without `resources:` answers 422 `unsupported`.
//!
//! `memory` is a whole number of bytes, or a size string as the config writes a pool's
//! `memory` (`"512m"`, `"2g"`, `"1GiB"`: binary units): the API's numbers are whole units
//! (`ttl_s`, `wait_ms`), and the string spares a client the arithmetic. `cpus` is a number
//! of CPUs, fractions allowed (`0.5`), as the config's `cpus`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Deserializer, de::Error};
use utoipa::ToSchema;
use warmpool_core::{Backend, LeaseInfo, ResourceError, Resources};

use crate::code::{Code, route_errors};
use crate::core_errors::RESIZE_CODES;
use crate::{ApiError, Shared};

/// `memory`: bytes (a whole number; `1e9` and `1073741824.0` too), or a size string.
pub fn opt_memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(serde_json::Number),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "memory: expected a whole number of bytes ≥ 0, got {n}"
                ))
            }),
        Some(Raw::Text(s)) => warmpool_core::parse_size(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "memory: invalid size {s:?} (write bytes, or e.g. \"512m\", \"2g\")"
            ))
        }),
    }
}

/// The ask of a body's `cpus` and `memory` as the core takes it; `None` when neither is
/// given. A zero, negative or not finite ask is the body's fault (400); one too large for
/// the engine's numbers is kept as the largest, which the pool's bound then refuses (422).
pub fn ask(cpus: Option<f64>, memory: Option<u64>) -> Result<Option<Resources>, ApiError> {
    let nano_cpus = match cpus {
        None => None,
        Some(c) if !c.is_finite() || c <= 0.0 => {
            return Err(ApiError::bad_request(format!(
                "cpus must be a number > 0 ({c})"
            )));
        }
        // `as` saturates.
        Some(c) => Some(((c * 1e9) as i64).max(1)),
    };
    let memory = match memory {
        Some(0) => return Err(ApiError::bad_request("memory must be > 0")),
        m => m.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
    };
    let r = Resources { nano_cpus, memory };
    Ok((!r.is_empty()).then_some(r))
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        let msg = e.to_string();
        match e {
            ResourceError::NotAllowed { .. } => Self::new(Code::Unsupported, msg),
            ResourceError::OutOfBounds { bound, .. } => {
                let mut e = Self::new(Code::OutOfBounds, msg);
                e.bound = Some(bound);
                e
            }
        }
    }
}

/// Body of `PATCH /v1/leases/{id}`: at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeBody {
    /// CPU limit in CPUs (> 0, fractions allowed), at most the pool's
    /// `resources.max_cpus`; absent: the lease's stays.
    #[schema(example = 1.5)]
    pub cpus: Option<f64>,
    /// Memory limit (swap included): bytes, or a size string (`"512m"`, `"2g"`), at most the
    /// pool's `resources.max_memory`; absent: the lease's stays.
    #[serde(default, deserialize_with = "opt_memory")]
    #[schema(schema_with = memory_schema)]
    pub memory: Option<u64>,
}

/// What `memory` may be: bytes or a size string.
pub fn memory_schema() -> utoipa::openapi::Schema {
    crate::body::schema(serde_json::json!({
        "oneOf": [
            { "type": "integer", "minimum": 1 },
            { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([kKmMgGtT]([iI]?[bB])?|[bB])?\\s*$" },
        ],
        "description": "bytes, or a size with a binary unit (`512m`, `2g`, `1GiB`)",
    }))
}

route_errors!(
    /// A resize: the lease's lookup and its operation's failures, and the pool's bounds.
    ResizeErrors = RESIZE_CODES
);

/// `PATCH /v1/leases/{id}`: change the lease's CPU and memory limits, live (its processes go
/// on), within its pool's `resources:` bounds; answers the lease with its new `resources`.
#[utoipa::path(patch, path = "/v1/leases/{id}", tag = "leases", operation_id = "resize",
    params(("id" = String, Path, description = "The lease id")),
    request_body = ResizeBody,
    responses(
        (status = 200, description = "The lease with its new limits", body = LeaseInfo),
        ResizeErrors,
    ))]
pub async fn resize<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: ResizeBody = crate::body::object(&headers, &raw)?;
    let Some(ask) = ask(b.cpus, b.memory)? else {
        return Err(ApiError::bad_request("give cpus, memory or both"));
    };
    Ok(Json(s.manager.resize(&id, &ask).await?).into_response())
}
