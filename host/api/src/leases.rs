//! Lease routes: acquire, list, show, exec, files, renew, release.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use warmpool_core::{AcquireRequest, Backend, ExecRequest};

use crate::metrics::AcquireLabels;
use crate::{ApiError, Shared};

/// Longest exec a client may ask for.
const MAX_EXEC: Duration = Duration::from_secs(3600);
const DEFAULT_EXEC: Duration = Duration::from_secs(60);

/// A JSON body, or a 400 that says what is wrong with it.
pub fn body<T: DeserializeOwned>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match b {
        Ok(Json(t)) => Ok(t),
        // A body of the wrong shape is a 400, as for any other bad input; size (413) and
        // content type (415) keep their own codes.
        Err(e @ (JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_))) => {
            Err(ApiError::bad_request(e.body_text()))
        }
        Err(e) => Err(ApiError::new(e.status(), "bad_request", e.body_text())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    pub pool: String,
    pub ttl_s: Option<u64>,
    pub wait_ms: Option<u64>,
    /// Who takes the lease (user, session, job); shown in the lease and persisted with it.
    pub owner: Option<String>,
}

pub async fn acquire<B: Backend>(
    State(s): State<Shared<B>>,
    b: Result<Json<AcquireBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if b.ttl_s == Some(0) {
        return Err(ApiError::bad_request("ttl_s must be ≥ 1"));
    }
    if b.owner
        .as_ref()
        .is_some_and(|o| o.is_empty() || o.len() > 200)
    {
        return Err(ApiError::bad_request("owner must be 1-200 bytes"));
    }
    let req = AcquireRequest {
        pool: b.pool.clone(),
        ttl: b.ttl_s.map(Duration::from_secs),
        wait: b.wait_ms.map(Duration::from_millis),
        owner: b.owner.clone(),
    };
    let lease = s.manager.acquire(req).await?;
    s.metrics
        .acquire_seconds
        .get_or_create(&AcquireLabels {
            pool: lease.pool.clone(),
            source: lease.source.to_string(),
        })
        .observe(lease.acquire_ms / 1000.0);
    Ok((StatusCode::CREATED, Json(lease)).into_response())
}

pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    Json(serde_json::json!({ "leases": s.manager.leases() })).into_response()
}

pub async fn show<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.manager.lease(&id)?).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// Return the container to the pool after a verified reset, if the pool allows reuse.
    #[serde(default)]
    pub reuse: bool,
}

/// `DELETE /v1/leases/{id}`: 204, the container is destroyed. With `?reuse=true`: 200 and
/// `{"reused": bool, "reason"?}` once the reset and verification have run.
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    pub ttl_s: u64,
}

pub async fn renew<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    b: Result<Json<RenewBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if b.ttl_s == 0 {
        return Err(ApiError::bad_request("ttl_s must be ≥ 1"));
    }
    Ok(Json(s.manager.renew(&id, Duration::from_secs(b.ttl_s))?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    pub cmd: Vec<String>,
    pub stdin: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub timeout_ms: Option<u64>,
}

pub async fn exec<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    b: Result<Json<ExecBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if b.cmd.is_empty() || b.cmd[0].is_empty() {
        return Err(ApiError::bad_request(
            "cmd must be a non-empty list, e.g. [\"sh\", \"-c\", \"echo hi\"]",
        ));
    }
    if let Some(k) = b.env.keys().find(|k| k.is_empty() || k.contains('=')) {
        return Err(ApiError::bad_request(format!(
            "env key {k:?} must be non-empty and contain no '='"
        )));
    }
    let timeout = b.timeout_ms.map_or(DEFAULT_EXEC, Duration::from_millis);
    if timeout.is_zero() || timeout > MAX_EXEC {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be between 1 and {}",
            MAX_EXEC.as_millis()
        )));
    }
    let req = ExecRequest {
        cmd: b.cmd,
        stdin: b.stdin.map(String::into_bytes),
        env: b.env,
        workdir: b.workdir,
        timeout,
        output_limit: 0, // the manager's configured limit
    };
    Ok(Json(s.manager.exec(&id, req).await?).into_response())
}

/// Paths arrive without their leading slash; they are absolute inside the container.
fn container_path(path: &str) -> Result<String, ApiError> {
    let p = format!("/{}", path.trim_start_matches('/'));
    warmpool_core::backend::checked_path(&p).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(p)
}

pub async fn put_file<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
    data: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let data = data.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let path = container_path(&path)?;
    s.manager.put_file(&id, &path, data.to_vec()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_file<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let path = container_path(&path)?;
    let data = s.manager.get_file(&id, &path).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        data,
    )
        .into_response())
}
