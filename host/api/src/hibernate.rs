//! Lease hibernation routes: `POST /v1/leases/{id}/suspend` and `POST /v1/leases/{id}/resume`
//! (the core's `leasing/hibernate.rs` does the work). Under the lease scope like every route of
//! one lease: its tenant, an admin, or its lease token.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use warmpool_core::{Backend, LeaseInfo};

use crate::code::route_errors;
use crate::core_errors::LEASE_CODES;
use crate::{ApiError, Shared};

/// Body of `POST /v1/leases/{id}/suspend` and `/resume`: nothing to set; `{}`, or an empty
/// body (either sent as `application/json`, as every POST must be).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HibernateBody {}

route_errors!(
    /// What a suspend or resume answers: a lease's codes, among them 409 `cannot_suspend`.
    HibernateErrors = LEASE_CODES
);

/// `POST /v1/leases/{id}/suspend`: checkpoint the lease's container to the engine's disk and
/// stop it (memory and files kept, memory freed); answers the lease, `state: suspended`. The
/// TTL runs on while suspended. 409 `cannot_suspend` when the engine cannot checkpoint (the
/// reason is the engine's) or calls on the lease are under way.
#[utoipa::path(post, path = "/v1/leases/{id}/suspend", tag = "leases", operation_id = "suspend",
    params(("id" = String, Path, description = "The lease id")),
    request_body(content = HibernateBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The lease, suspended", body = LeaseInfo),
        HibernateErrors,
    ))]
pub async fn suspend<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::body::object_or_default::<HibernateBody>(&headers, &raw)?;
    Ok(Json(s.manager.suspend(&id).await?).into_response())
}

/// `POST /v1/leases/{id}/resume`: restore a suspended lease's container from its checkpoint;
/// answers the lease, `state: active`. A running lease answers as it is.
#[utoipa::path(post, path = "/v1/leases/{id}/resume", tag = "leases", operation_id = "resume",
    params(("id" = String, Path, description = "The lease id")),
    request_body(content = HibernateBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The lease, running", body = LeaseInfo),
        HibernateErrors,
    ))]
pub async fn resume<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::body::object_or_default::<HibernateBody>(&headers, &raw)?;
    Ok(Json(s.manager.resume(&id).await?).into_response())
}
