//! Lease routes: acquire, list, show, exec, files, renew, release.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use warmpool_core::{AcquireRequest, Backend, BackendError, ExecOutput, ExecRequest, FileBody};

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

/// Body of `POST /v1/leases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// Name of the pool to lease from.
    pub pool: String,
    /// Lease time to live in seconds (≥ 1); the pool's `default_ttl` when absent,
    /// capped at its `max_ttl`.
    pub ttl_s: Option<u64>,
    /// How long to wait for a container when the pool is dry, in milliseconds; never
    /// beyond the pool's `wait_timeout`, which applies when absent.
    pub wait_ms: Option<u64>,
    /// Who takes the lease (user, session, job); shown in the lease and persisted with it.
    pub owner: Option<String>,
    /// Only engines carrying every one of these labels may serve the lease, e.g.
    /// `{"zone": "a"}`; 422 `no_such_engine` when no engine has them.
    #[serde(default)]
    pub engine: BTreeMap<String, String>,
}

/// `POST /v1/leases`: lease a container from a pool; 201 with the lease. Records the
/// acquire latency metric.
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
    if b.engine.len() > 32
        || b.engine
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256)
    {
        return Err(ApiError::bad_request(
            "engine: at most 32 labels, keys of 1-128 bytes, values of at most 256",
        ));
    }
    let req = AcquireRequest {
        pool: b.pool.clone(),
        ttl: b.ttl_s.map(Duration::from_secs),
        wait: b.wait_ms.map(Duration::from_millis),
        owner: b.owner.clone(),
        engine_labels: b.engine.clone(),
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

/// `GET /v1/leases`: every current lease, as `{"leases": [...]}`.
pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    Json(serde_json::json!({ "leases": s.manager.leases() })).into_response()
}

/// `GET /v1/leases/{id}`: one lease, or 404 `unknown_lease`.
pub async fn show<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.manager.lease(&id)?).into_response())
}

/// Query of `DELETE /v1/leases/{id}`.
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

/// Body of `POST /v1/leases/{id}/renew`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// New time to live in seconds from now; ≥ 1, capped at the pool's `max_ttl`.
    pub ttl_s: u64,
}

/// `POST /v1/leases/{id}/renew`: make the lease expire `ttl_s` from now; answers the lease.
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

/// How exec output is returned: `text` (UTF-8, invalid bytes replaced) or `base64` (exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text, invalid bytes replaced with U+FFFD; the default.
    #[default]
    Text,
    /// Standard base64, exact for binary output.
    Base64,
}

/// Body of `POST /v1/leases/{id}/exec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// Program and arguments, run without a shell; must be non-empty and free of NUL.
    pub cmd: Vec<String>,
    /// Text for the command's stdin.
    pub stdin: Option<String>,
    /// Bytes for the command's stdin, base64-encoded (instead of `stdin`).
    pub stdin_b64: Option<String>,
    /// Extra environment variables; keys non-empty, without `=` or NUL.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory for the command; the image's default when absent.
    pub workdir: Option<String>,
    /// Time limit in milliseconds: 60 s when absent, at most 3600 s.
    pub timeout_ms: Option<u64>,
    /// How to return stdout and stderr; `base64` keeps binary output exact.
    #[serde(default)]
    pub output: Encoding,
}

/// An exec's answer.
#[derive(Debug, Serialize)]
pub struct ExecResponse {
    /// `null` when the command timed out.
    pub exit_code: Option<i64>,
    /// The command's stdout, encoded per `encoding`.
    pub stdout: String,
    /// The command's stderr, encoded per `encoding`.
    pub stderr: String,
    /// How `stdout` and `stderr` are encoded.
    pub encoding: Encoding,
    /// The command hit its time limit and was killed; `exit_code` is then `null`.
    pub timed_out: bool,
    /// stdout or stderr went past the server's output limit and was cut.
    pub truncated: bool,
    /// Wall time of the exec, in milliseconds.
    pub duration_ms: u64,
}

impl ExecResponse {
    fn new(o: ExecOutput, encoding: Encoding) -> Self {
        let enc = |b: Vec<u8>| match encoding {
            Encoding::Text => String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Encoding::Base64 => B64.encode(b),
        };
        Self {
            exit_code: o.exit_code,
            stdout: enc(o.stdout),
            stderr: enc(o.stderr),
            encoding,
            timed_out: o.timed_out,
            truncated: o.truncated,
            duration_ms: o.duration_ms,
        }
    }
}

/// `POST /v1/leases/{id}/exec`: run a command in the lease's container and answer
/// with its exit code and output.
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
    if b.cmd.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(
            "cmd arguments must not contain NUL bytes",
        ));
    }
    if let Some(k) = b
        .env
        .iter()
        .find(|(k, v)| k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k)
    {
        return Err(ApiError::bad_request(format!(
            "env key {k:?} must be non-empty and contain no '=' or NUL, nor its value NUL"
        )));
    }
    let timeout = b.timeout_ms.map_or(DEFAULT_EXEC, Duration::from_millis);
    if timeout.is_zero() || timeout > MAX_EXEC {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be between 1 and {}",
            MAX_EXEC.as_millis()
        )));
    }
    let stdin = match (b.stdin, b.stdin_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give stdin or stdin_b64, not both"));
        }
        (Some(t), None) => Some(t.into_bytes()),
        (None, Some(b64)) => Some(
            B64.decode(b64.as_bytes())
                .map_err(|e| ApiError::bad_request(format!("stdin_b64 is not base64: {e}")))?,
        ),
        (None, None) => None,
    };
    let req = ExecRequest {
        cmd: b.cmd,
        stdin,
        env: b.env,
        workdir: b.workdir,
        timeout,
        output_limit: 0, // the manager's configured limit
    };
    let out = s.manager.exec(&id, req).await?;
    Ok(Json(ExecResponse::new(out, b.output)).into_response())
}

/// Paths arrive without their leading slash; they are absolute inside the container.
fn container_path(path: &str) -> Result<String, ApiError> {
    let p = format!("/{}", path.trim_start_matches('/'));
    warmpool_core::checked_path(&p).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(p)
}

/// `PUT /v1/leases/{id}/files/{*path}`: the body is streamed into the container as it arrives
/// when its length is declared; a chunked body (no `Content-Length`) is read first, up to
/// `server.max_upload_bytes`.
pub async fn put_file<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let path = container_path(&path)?;
    let max = s.max_upload_bytes as u64;
    let too_large = |n: u64| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the file is {n} bytes; server.max_upload_bytes is {max}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let file = match declared {
        Some(n) if n > max => return Err(too_large(n)),
        Some(n) => FileBody {
            len: n,
            body: Box::pin(
                body.into_data_stream()
                    .map_err(|e| BackendError::Invalid(format!("reading the upload: {e}"))),
            ),
        },
        None => {
            let data = axum::body::to_bytes(body, max as usize)
                .await
                .map_err(|_| too_large(max + 1))?;
            FileBody::from_bytes(data.to_vec())
        }
    };
    s.manager.put_file(&id, &path, file).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/leases/{id}/files/{*path}`: the file, streamed out of the container as it is read.
pub async fn get_file<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let path = container_path(&path)?;
    let file = s.manager.get_file(&id, &path).await?;
    let body = Body::from_stream(
        file.body
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, file.len.to_string()),
        ],
        body,
    )
        .into_response())
}
