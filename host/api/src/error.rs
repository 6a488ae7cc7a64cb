//! Every API error is `{"error":{"code","message"}}` with its code's status (the table of codes
//! is [`crate::code`]; how the core's errors map onto it, [`crate::core_errors`]); 429 and 503
//! answers that can be retried carry `Retry-After`. [`json_errors`] gives the same shape to the errors
//! axum's own extractors produce (a bad path, a bad query), so no client ever parses plain text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::code::Code;

/// The body of every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `pool_exhausted`, `unknown_lease`, `bad_request`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// With `quota_exceeded`: which quota (`max_leases`, `acquires_per_s`,
    /// `lease_seconds_per_hour`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<&'static str>,
    /// With `out_of_bounds`: the bound the request is outside (`max_ready`,
    /// `resources.max_memory`, …), which the message also names first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<&'static str>,
}

impl ErrorBody {
    /// The body of an error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                quota: None,
                bound: None,
            },
        }
    }
}

/// `Retry-After` of a 429 or 503 whose cause names no better time: an engine reconnect, a
/// restart after a shutdown, a readiness check are all a matter of seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// An API error, answered as `{"error":{"code","message"}}`; 5xx answers are also logged.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Machine-readable error code, e.g. `pool_exhausted`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Sent as `Retry-After`, in whole seconds rounded up; `None` sends no header.
    pub retry_after: Option<Duration>,
    /// The quota that refused the request (`quota_exceeded`).
    pub quota: Option<&'static str>,
    /// The bound the request is outside (`out_of_bounds`).
    pub bound: Option<&'static str>,
}

impl ApiError {
    /// An error with this code and message, answered with the code's status. A 429 or 503
    /// says when to retry (the document promises `Retry-After` on every one):
    /// [`DEFAULT_RETRY_AFTER`] unless the caller sets its own. Other statuses send none.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::answered(code.status(), code.as_str(), message)
    }

    /// A 429 `quota_exceeded`: which quota, why, and when to retry.
    pub fn quota(r: crate::tenancy::Rejection) -> Self {
        let mut e = Self::new(Code::QuotaExceeded, r.message);
        e.retry_after = Some(r.retry_after);
        e.quota = Some(r.quota.as_str());
        e
    }

    /// A 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// Any status and code: only for [`json_errors`], which keeps the status of an answer
    /// that is not the API's own.
    fn answered(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: Code::retryable(status).then_some(DEFAULT_RETRY_AFTER),
            quota: None,
            bound: None,
        }
    }
}

/// At most one warning per second for each error code; the rest are counted and reported with
/// the next one. An outage answered 5xx thousands of times a second writes a line a second.
fn warn_throttled(code: &'static str, status: StatusCode, message: &str) {
    static LAST: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);
    let mut guard = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    let entry = map.entry(code).or_insert((now - Duration::from_secs(2), 0));
    if now.duration_since(entry.0) < Duration::from_secs(1) {
        entry.1 += 1;
        return;
    }
    let suppressed = std::mem::take(&mut entry.1);
    entry.0 = now;
    drop(guard);
    tracing::warn!(%status, code, message, suppressed, "request failed");
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            warn_throttled(self.code, self.status, &self.message);
        }
        let mut body = ErrorBody::new(self.code, self.message);
        body.error.quota = self.quota;
        body.error.bound = self.bound;
        let body = Json(body);
        let mut resp = (self.status, body).into_response();
        if let Some(d) = self.retry_after {
            // Whole seconds, rounded up: a client that honours it is never early.
            let secs = d.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// The codes of axum's own rejections, by their status; any other status is `internal` when
/// it is a server error, else `error` (neither is an answer of a route).
const REJECTIONS: &[Code] = &[
    Code::BadRequest,
    Code::NotFound,
    Code::MethodNotAllowed,
    Code::PayloadTooLarge,
    Code::UnsupportedMediaType,
    Code::Unprocessable,
    Code::UpgradeRequired,
];

/// Rewrite an error answer that is not JSON (one of axum's own rejections) into the API's error
/// shape, keeping its status and the headers a client acts on.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match REJECTIONS.iter().find(|c| c.status() == status) {
        Some(c) => c.as_str(),
        None if status.is_server_error() => "internal",
        None => "error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::answered(status, code, message).into_response();
    for h in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use warmpool_core::{AcquireError, BackendError, LeaseError};

    use super::*;

    fn retry_after(e: ApiError) -> (StatusCode, Option<String>) {
        let resp = e.into_response();
        let v = resp.headers().get(header::RETRY_AFTER);
        (resp.status(), v.map(|v| v.to_str().unwrap().to_string()))
    }

    /// Every error that answers 429 or 503 says when to retry, including those whose cause
    /// names no time (a shutdown, an engine refusing mid-operation); a cause that names one
    /// keeps it. Found by reading: `shutting_down` and the engine's own `Unavailable` during a
    /// lease operation answered 503 without it, against the document.
    #[test]
    fn every_429_and_503_carries_retry_after() {
        let unavailable = || BackendError::Unavailable("connection refused".into());
        let cases: Vec<(ApiError, &str)> = vec![
            (AcquireError::ShuttingDown.into(), "2"),
            (AcquireError::EngineUnavailable("down".into()).into(), "2"),
            (
                AcquireError::Exhausted {
                    pool: "p".into(),
                    reason: "full".into(),
                    retry_after: Duration::from_millis(4500),
                }
                .into(),
                "5",
            ),
            (
                AcquireError::Degraded {
                    pool: "p".into(),
                    last_error: "no image".into(),
                    retry_after: Duration::from_secs(30),
                }
                .into(),
                "30",
            ),
            (
                LeaseError::EngineUnavailable {
                    lease: "l".into(),
                    engine: "e".into(),
                    reason: "down".into(),
                }
                .into(),
                "2",
            ),
            (
                LeaseError::Backend {
                    lease: "l".into(),
                    source: unavailable(),
                }
                .into(),
                "2",
            ),
            (ApiError::new(Code::NotReady, "starting"), "2"),
        ];
        for (e, want) in cases {
            let code = e.code;
            let (status, got) = retry_after(e);
            assert!(
                status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE,
                "{code}: {status}"
            );
            assert_eq!(got.as_deref(), Some(want), "{code}");
        }
        // Statuses a retry does not help send none.
        let (_, got) = retry_after(AcquireError::UnknownPool("p".into()).into());
        assert_eq!(got, None);
    }
}
