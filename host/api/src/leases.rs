//! Lease routes: acquire, list, show, exec, files, renew, release.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warmpool_core::{
    AcquireRequest, Backend, BackendError, ExecOutput, ExecRequest, FileBody, LeaseInfo,
    ReuseOutcome,
};

use crate::error::ErrorBody;
use crate::metrics::AcquireLabels;
use crate::{ApiError, Shared};

/// Reads `stdin_b64` as clients write base64: with or without its padding, and with any
/// bits past the last byte (some encoders leave them set).
const STDIN_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Longest exec a client may ask for.
pub(crate) const MAX_EXEC: Duration = Duration::from_secs(3600);
const DEFAULT_EXEC: Duration = Duration::from_secs(60);

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
    crate::openapi::schema(serde_json::json!({
        "type": "object",
        "maxProperties": 32,
        "propertyNames": { "type": "string", "minLength": 1, "maxLength": 128 },
        "additionalProperties": { "type": "string", "maxLength": 256 },
    }))
}

/// `POST /v1/leases`: lease a container from a pool; 201 with the lease. Records the
/// acquire latency metric.
#[utoipa::path(post, path = "/v1/leases", tag = "leases", operation_id = "acquire",
    request_body = AcquireBody,
    responses(
        (status = 201, description = "The lease", body = LeaseInfo),
        (status = 404, description = "`unknown_pool`", body = ErrorBody),
        (status = 422, description = "`no_such_engine`: no engine carries the labels asked for", body = ErrorBody),
        (status = 429, description = "`pool_exhausted`: no container within the wait", body = ErrorBody),
        (status = 502, description = "`create_failed`: the cold create failed", body = ErrorBody),
        (status = 503, description = "`pool_degraded`, `engine_unavailable` or `shutting_down`", body = ErrorBody),
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
        setup: crate::setup::lease_setup(&b)?,
    };
    let lease = s.manager.acquire(req).await?;
    s.metrics
        .acquire_seconds
        .get_or_create(&AcquireLabels {
            pool: lease.pool.clone(),
            source: crate::metrics::source_label(lease.source).to_string(),
        })
        .observe(lease.acquire_ms / 1000.0);
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

/// `GET /v1/leases/{id}`: one lease, or 404 `unknown_lease`.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases", operation_id = "show_lease",
    params(("id" = String, Path, description = "The lease id")),
    responses(
        (status = 200, description = "The lease", body = LeaseInfo),
        (status = 404, description = "`unknown_lease`", body = ErrorBody),
        (status = 503, description = "`lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
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

/// `DELETE /v1/leases/{id}`: 204, the container is destroyed. With `?reuse=true`: 200 and
/// `{"reused": bool, "reason"?}` once the reset and verification have run.
#[utoipa::path(delete, path = "/v1/leases/{id}", tag = "leases", operation_id = "release",
    params(("id" = String, Path, description = "The lease id"), ReleaseQuery),
    responses(
        (status = 204, description = "Released; the container is destroyed and the pool refills"),
        (status = 200, description = "With `reuse=true`: whether the container went back to the pool, and why not", body = ReuseOutcome),
        (status = 404, description = "`unknown_lease`", body = ErrorBody),
        (status = 410, description = "`container_gone`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`, or `lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
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
        (status = 404, description = "`unknown_lease`", body = ErrorBody),
        (status = 503, description = "`lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
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

/// How exec output is returned: `text` (UTF-8, invalid bytes replaced) or `base64` (exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text, invalid bytes replaced with U+FFFD; the default.
    #[default]
    Text,
    /// Standard base64, exact for binary output.
    Base64,
}

/// Body of `POST /v1/leases/{id}/exec`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// Program and arguments, run without a shell: at least the program, which is not empty;
    /// no NUL anywhere.
    #[schema(schema_with = cmd_schema)]
    pub cmd: Vec<String>,
    /// Text for the command's stdin.
    pub stdin: Option<String>,
    /// Bytes for the command's stdin, base64-encoded (instead of `stdin`); padding optional.
    #[schema(
        content_encoding = "base64",
        pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$"
    )]
    pub stdin_b64: Option<String>,
    /// Extra environment variables; keys non-empty, without `=` or NUL.
    #[serde(default)]
    #[schema(schema_with = env_schema)]
    pub env: BTreeMap<String, String>,
    /// Working directory for the command; the image's default when absent.
    pub workdir: Option<String>,
    /// Time limit in milliseconds: 60 s when absent, at most 3600 s.
    #[schema(minimum = 1, maximum = 3_600_000)]
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub timeout_ms: Option<u64>,
    /// How to return stdout and stderr; `base64` keeps binary output exact.
    #[serde(default)]
    pub output: Encoding,
}

fn cmd_schema() -> utoipa::openapi::Schema {
    crate::openapi::schema(serde_json::json!({
        "type": "array",
        "minItems": 1,
        "prefixItems": [{ "type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$" }],
        "items": { "type": "string", "pattern": "^[^\\u0000]*$" },
    }))
}

fn env_schema() -> utoipa::openapi::Schema {
    crate::openapi::schema(serde_json::json!({
        "type": "object",
        "propertyNames": { "type": "string", "minLength": 1, "pattern": "^[^=\\u0000]*$" },
        "additionalProperties": { "type": "string", "pattern": "^[^\\u0000]*$" },
    }))
}

/// An exec's answer.
#[derive(Debug, Serialize, ToSchema)]
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
#[utoipa::path(post, path = "/v1/leases/{id}/exec", tag = "leases", operation_id = "exec",
    params(("id" = String, Path, description = "The lease id")),
    request_body = ExecBody,
    responses(
        (status = 200, description = "The command ran (or timed out and was killed)", body = ExecResponse),
        (status = 404, description = "`unknown_lease`", body = ErrorBody),
        (status = 410, description = "`container_gone`: the lease's container died", body = ErrorBody),
        (status = 502, description = "`engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: the lease is kept; or `lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
    ))]
pub async fn exec<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: ExecBody = crate::body::object(&headers, &raw)?;
    let (req, output) = exec_request(b, MAX_EXEC)?;
    let out = s.manager.exec(&id, req).await?;
    Ok(Json(ExecResponse::new(out, output)).into_response())
}

/// An exec body, checked, as the core's request (`output_limit` 0: the manager's), and how
/// its output is to be encoded. `max` bounds `timeout_ms`.
pub(crate) fn exec_request(
    b: ExecBody,
    max: Duration,
) -> Result<(ExecRequest, Encoding), ApiError> {
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
    if timeout.is_zero() || timeout > max {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be between 1 and {}",
            max.as_millis()
        )));
    }
    let stdin = match (b.stdin, b.stdin_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give stdin or stdin_b64, not both"));
        }
        (Some(t), None) => Some(t.into_bytes()),
        (None, Some(b64)) => Some(
            STDIN_B64
                .decode(b64.as_bytes())
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
        ..ExecRequest::default()
    };
    Ok((req, b.output))
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
#[utoipa::path(put, path = "/v1/leases/{id}/files/{path}", tag = "files", operation_id = "put_file",
    params(
        ("id" = String, Path, description = "The lease id"),
        ("path" = String, Path, description = "Absolute path in the container, without its leading `/` (it may hold further `/`); `..` and NUL are refused"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 204, description = "Written; parents are created"),
        (status = 404, description = "`unknown_lease`", body = ErrorBody),
        (status = 410, description = "`container_gone`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: past `server.max_upload_bytes`", body = ErrorBody),
        (status = 502, description = "`engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`, or `lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/v1/leases/{id}/files/{path}", tag = "files", operation_id = "get_file",
    params(
        ("id" = String, Path, description = "The lease id"),
        ("path" = String, Path, description = "Absolute path in the container, without its leading `/`"),
    ),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "`unknown_lease` or `file_not_found`", body = ErrorBody),
        (status = 410, description = "`container_gone`", body = ErrorBody),
        (status = 502, description = "`engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`, or `lease_not_restored_yet` (just after a restart, before its engine is reconciled)", body = ErrorBody),
    ))]
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
