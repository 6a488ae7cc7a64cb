//! Lease routes: acquire, list, show, renew, release (a lease's exec is `exec.rs`, its files
//! `files.rs`, its resources `resources.rs`).

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
use crate::tenancy::caller::Caller;
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
    /// The lease's CPU limit in CPUs (> 0, fractions allowed), applied to the warm container
    /// before the 201; at most the pool's `resources.max_cpus` (422 `out_of_bounds`; 422
    /// `unsupported` from a pool without `resources:`). Absent: the pool's `cpus`.
    #[schema(example = 1.5)]
    pub cpus: Option<f64>,
    /// The lease's memory limit (swap included): bytes, or a size string (`"512m"`, `"2g"`),
    /// applied as `cpus` is; at most the pool's `resources.max_memory`. Absent: the pool's
    /// `memory`.
    #[serde(default, deserialize_with = "crate::resources::opt_memory")]
    #[schema(schema_with = crate::resources::memory_schema)]
    pub memory: Option<u64>,
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
    /// What an acquire answers: the core's refusals, a set-up out of bounds (the body's own
    /// faults are 400), and the tenant's quotas.
    AcquireErrors = ACQUIRE_CODES,
    [Code::BadRequest, Code::PayloadTooLarge, Code::QuotaExceeded],
);

/// The answer of an acquire: the lease, and the token that opens it alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcquiredLease {
    /// The lease.
    #[serde(flatten)]
    pub lease: LeaseInfo,
    /// `Authorization: Bearer <lease_token>` opens this lease's routes (show, exec, files,
    /// terminal, renew, release) and nothing else, until the lease ends. Hand it, never a
    /// tenant token, to the agent that uses the sandbox.
    pub lease_token: String,
}

/// `POST /v1/leases`: lease a container from a pool; 201 with the lease. Records the
/// acquire latency metric, and the acquire in the pool's history.
#[utoipa::path(post, path = "/v1/leases", tag = "leases", operation_id = "acquire",
    request_body = AcquireBody,
    responses(
        (status = 201, description = "The lease, with its lease token", body = AcquiredLease),
        AcquireErrors,
    ))]
pub async fn acquire<B: Backend>(
    State(s): State<Shared<B>>,
    caller: Caller,
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
    if !caller.may_use(&b.pool) {
        return Err(ApiError::new(
            Code::UnknownPool,
            format!(
                "no pool {:?} among the pools tenant {:?} may use",
                b.pool,
                caller.label()
            ),
        ));
    }
    let resources = crate::resources::ask(b.cpus, b.memory)?;
    let tenant = caller.tenant().cloned();
    let ttl = b.ttl_s.map(Duration::from_secs);
    // The quotas first: nothing is taken from the pool for an acquire they refuse. The
    // admission holds the tenant's place and the lease's time while the acquire runs; by its
    // end a lease it made is in the core's table, which counts it and charged its time.
    let admitted = match &tenant {
        Some(t) => {
            let lease_ttl = s
                .manager
                .lease_ttl(&b.pool, ttl)
                .ok_or_else(|| warmpool_core::AcquireError::UnknownPool(b.pool.clone()))?;
            let admit = t
                .usage
                .admit(|| s.manager.tenant_leases(&t.name), lease_ttl)
                .map_err(ApiError::quota)?;
            Some(admit)
        }
        None => None,
    };
    let req = AcquireRequest {
        tenant: tenant.as_ref().map(|t| t.name.clone()),
        pool: b.pool.clone(),
        ttl,
        wait: b.wait_ms.map(Duration::from_millis),
        owner: b.owner.clone(),
        engine_labels: b.engine.clone(),
        setup: crate::setup::lease_setup(&b.env, &b.secrets, b.workdir.as_deref(), &b.files)?,
        resources,
    };
    let lease = s.manager.acquire(req).await?;
    drop(admitted);
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
    let lease_token = s.lease_keys.mint(&lease.lease_id);
    Ok((
        StatusCode::CREATED,
        Json(AcquiredLease { lease, lease_token }),
    )
        .into_response())
}

/// The current leases the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseList {
    /// The leases, oldest first.
    pub leases: Vec<LeaseInfo>,
}

/// `GET /v1/leases`: the current leases, as `{"leases": [...]}`: a tenant's own, or every
/// lease for an admin.
#[utoipa::path(get, path = "/v1/leases", tag = "leases", operation_id = "list_leases",
    responses((status = 200, description = "The current leases: the tenant's own, or all of them for an admin", body = LeaseList)))]
pub async fn list<B: Backend>(State(s): State<Shared<B>>, caller: Caller) -> Response {
    let mut leases = s.manager.leases();
    leases.retain(|l| caller.sees(&l.lease_id, l.tenant.as_deref()));
    Json(LeaseList { leases }).into_response()
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
    // The lease's unused time goes back to its tenant as the core's table gives it up.
    if q.reuse {
        return Ok(Json(s.manager.release_for_reuse(&id).await?).into_response());
    }
    s.manager.release(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

route_errors!(
    /// A renew: the lookup, and the tenant's lease-seconds that cannot pay for it.
    RenewErrors = LOOKUP_CODES,
    [Code::QuotaExceeded],
);

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
        RenewErrors,
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
    // The lease's tenant pays for the extension from its lease-seconds (a shorter lease gives
    // some back), asked with the lease's own time under the core's lock.
    let pay = |tenant: Option<&str>, had: Duration, will: Duration| {
        let Some(t) = tenant.and_then(|n| s.tenants.by_name(n)) else {
            return Ok(());
        };
        if will > had {
            t.usage.charge(will - had)
        } else {
            t.usage.refund(had - will);
            Ok(())
        }
    };
    let lease = s
        .manager
        .renew_with(&id, Duration::from_secs(b.ttl_s), pay)?
        .map_err(ApiError::quota)?;
    Ok(Json(lease).into_response())
}
