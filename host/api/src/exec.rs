//! `POST /v1/leases/{id}/exec`: a command run in the lease's container, answered whole with
//! its exit code and output; and the exec body ([`ExecBody`], checked by [`exec_request`]) the
//! streamed exec (`stream.rs`) and the WebSocket routes (`terminal.rs`) share.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warmpool_core::{Backend, ExecOutput, ExecRequest};

use crate::code::route_errors;
use crate::core_errors::LEASE_CODES;
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
    crate::body::schema(serde_json::json!({
        "type": "array",
        "minItems": 1,
        "prefixItems": [{ "type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$" }],
        "items": { "type": "string", "pattern": "^[^\\u0000]*$" },
    }))
}

fn env_schema() -> utoipa::openapi::Schema {
    crate::body::schema(serde_json::json!({
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

route_errors!(
    /// What an operation on the lease's container answers.
    ExecErrors = LEASE_CODES
);

/// `POST /v1/leases/{id}/exec`: run a command in the lease's container and answer
/// with its exit code and output.
#[utoipa::path(post, path = "/v1/leases/{id}/exec", tag = "leases", operation_id = "exec",
    params(("id" = String, Path, description = "The lease id")),
    request_body = ExecBody,
    responses(
        (status = 200, description = "The command ran (or timed out and was killed)", body = ExecResponse),
        ExecErrors,
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
