//! Lease routes: acquire, list, show, renew, release (a lease's exec is `exec.rs`, its files
//! `files.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warmpool_core::{AcquireRequest, Backend, LeaseInfo, ReuseOutcome};

use crate::code::{Code, route_errors};
use crate::core_errors::{ACQUIRE_CODES, LEASE_CODES, LOOKUP_CODES};
use crate::metrics::AcquireLabels;
use crate::{ApiError, Shared};

/// Body of `POST /v1/leases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// Name of the pool to lease from.
    #[schema(example = "busybox")]
    pub pool: String,
    /// Lease time to live in seconds (≥ 1); the pool's `default_ttl` when absent,
    /// capped at its `max_ttl`.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub ttl_s: Option<u64>,
    /// How long to wait for a container when the pool is dry, in milliseconds; never
    /// beyond the pool's `wait_timeout`, which applies when absent.
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub wait_ms: Option<u64>,
    /// Who takes the lease (user, session, job); shown in the lease and persisted with it.
    #[schema(min_length = 1, max_length = 200)]
    pub owner: Option<String>,
    /// Only engines carrying every one of these labels may serve the lease, e.g.
    /// `{"zone": "a"}`; 422 `no_such_engine` when no engine has them. At most 32 labels, keys
    /// of 1-128 characters, values of at most 256.
    #[serde(default)]
    #[schema(schema_with = engine_labels_schema)]
    pub engine: BTreeMap<String, String>,
    /// Environment variables of every exec and terminal of the lease, applied before the 201
    /// (on the warm path: no cold start). At most 256, names of 1-256 characters (no `=` or
    /// NUL), values of at most 32 KiB.
    #[serde(default)]
    #[schema(schema_with = crate::setup::env_schema)]
    pub env: BTreeMap<String, String>,
    /// Secrets: variables as `env`, that never appear in logs, events, the audit log, the
    /// state store, metrics, the engine's view of the container or its filesystem. Only from
    /// pools with `exec: agent` (422 otherwise).
    #[serde(default)]
    #[schema(schema_with = crate::setup::env_schema)]
    pub secrets: BTreeMap<String, crate::setup::SecretValue>,
    /// Small files written before the 201: absolute path → content (text, or
    /// `{"content_b64": "...", "mode": 493}`). At most 64 files and 1 MiB in all.
    #[serde(default)]
    #[schema(schema_with = crate::setup::files_schema)]
    pub files: BTreeMap<String, crate::setup::FileContent>,
    /// Working directory of every exec and terminal of the lease (absolute).
    pub workdir: Option<String>,
}

fn engine_labels_schema() -> utoipa::openapi::Schema {
    crate::body::schema(serde_json::json!({
        "type": "object",
        "maxProperties": 32,
        "propertyNames": { "type": "string", "minLength": 1, "maxLength": 128 },
        "additionalProperties": { "type": "string", "maxLength": 256 },
    }))
}

route_errors!(
    /// What an acquire answers: the core's refusals, and a set-up out of bounds (the body's
    /// own faults are 400).
    AcquireErrors = ACQUIRE_CODES,
    [Code::BadRequest, Code::PayloadTooLarge],
);

/// `POST /v1/leases`: lease a container from a pool; 201 with the lease. Records the
/// acquire latency metric, and the acquire in the pool's history.
#[utoipa::path(post, path = "/v1/leases", tag = "leases", operation_id = "acquire",
    request_body = AcquireBody,
    responses(
        (status = 201, description = "The lease", body = LeaseInfo),
        AcquireErrors,
    ))]
pub async fn acquire<B: Backend>(
    State(s): State<Shared<B>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: AcquireBody = crate::body::object(&headers, &raw)?;
    if b.ttl_s == Some(0) {
        return Err(ApiError::bad_request("ttl_s must be ≥ 1"));
    }
    if b.owner
        .as_ref()
        .is_some_and(|o| o.is_empty() || o.chars().count() > 200)
    {
        return Err(ApiError::bad_request("owner must be 1-200 characters"));
    }
    if b.engine.len() > 32
        || b.engine
            .iter()
            .any(|(k, v)| k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256)
    {
        return Err(ApiError::bad_request(
            "engine: at most 32 labels, keys of 1-128 characters, values of at most 256",
        ));
    }
    let req = AcquireRequest {
        pool: b.pool.clone(),
        ttl: b.ttl_s.map(Duration::from_secs),
        wait: b.wait_ms.map(Duration::from_millis),
        owner: b.owner.clone(),
        engine_labels: b.engine.clone(),
        setup: crate::setup::lease_setup(&b.env, &b.secrets, b.workdir.as_deref(), &b.files)?,
    };
    let lease = s.manager.acquire(req).await?;
    let source = crate::metrics::source_label(lease.source);
    s.metrics
        .acquire_seconds
        .get_or_create(&AcquireLabels {
            pool: lease.pool.clone(),
            source: source.to_string(),
        })
        .observe(lease.acquire_ms / 1000.0);
    s.history.record_acquire(
        &lease.pool,
        source == "warm",
        Duration::from_secs_f64(lease.acquire_ms.max(0.0) / 1000.0),
    );
    Ok((StatusCode::CREATED, Json(lease)).into_response())
}

/// Every current lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseList {
    /// The leases, oldest first.
    pub leases: Vec<LeaseInfo>,
}

/// `GET /v1/leases`: every current lease, as `{"leases": [...]}`.
#[utoipa::path(get, path = "/v1/leases", tag = "leases", operation_id = "list_leases",
    responses((status = 200, description = "Every current lease", body = LeaseList)))]
pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    Json(LeaseList {
        leases: s.manager.leases(),
    })
    .into_response()
}

route_errors!(
    /// What looking a lease up answers (`show`, `renew`).
    LookupErrors = LOOKUP_CODES
);

/// `GET /v1/leases/{id}`: one lease, or 404 `unknown_lease`.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases", operation_id = "show_lease",
    params(("id" = String, Path, description = "The lease id")),
    responses(
        (status = 200, description = "The lease", body = LeaseInfo),
        LookupErrors,
    ))]
pub async fn show<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.manager.lease(&id)?).into_response())
}

/// Query of `DELETE /v1/leases/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// Return the container to the pool after a verified reset, if the pool allows reuse.
    #[serde(default)]
    pub reuse: bool,
}

route_errors!(
    /// What a release answers: with `reuse`, the reset and verification run in the container.
    ReleaseErrors = LEASE_CODES
);

/// `DELETE /v1/leases/{id}`: 204, the container is destroyed. With `?reuse=true`: 200 and
/// `{"reused": bool, "reason"?}` once the reset and verification have run.
#[utoipa::path(delete, path = "/v1/leases/{id}", tag = "leases", operation_id = "release",
    params(("id" = String, Path, description = "The lease id"), ReleaseQuery),
    responses(
        (status = 204, description = "Released; the container is destroyed and the pool refills"),
        (status = 200, description = "With `reuse=true`: whether the container went back to the pool, and why not", body = ReuseOutcome),
        ReleaseErrors,
    ))]
pub async fn release<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    q: Result<Query<ReleaseQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.reuse {
        return Ok(Json(s.manager.release_for_reuse(&id).await?).into_response());
    }
    s.manager.release(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /v1/leases/{id}/renew`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// New time to live in seconds from now; ≥ 1, capped at the pool's `max_ttl`.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::json_int::u64")]
    pub ttl_s: u64,
}

/// `POST /v1/leases/{id}/renew`: make the lease expire `ttl_s` from now; answers the lease.
#[utoipa::path(post, path = "/v1/leases/{id}/renew", tag = "leases", operation_id = "renew",
    params(("id" = String, Path, description = "The lease id")),
    request_body = RenewBody,
    responses(
        (status = 200, description = "The lease with its new expiry", body = LeaseInfo),
        LookupErrors,
    ))]
pub async fn renew<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: RenewBody = crate::body::object(&headers, &raw)?;
    if b.ttl_s == 0 {
        return Err(ApiError::bad_request("ttl_s must be ≥ 1"));
    }
    Ok(Json(s.manager.renew(&id, Duration::from_secs(b.ttl_s))?).into_response())
}
