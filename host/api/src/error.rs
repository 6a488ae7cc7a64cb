//! Every API error is `{"error":{"code","message"}}` with a fitting status; 429 and 503 answers
//! that can be retried carry `Retry-After`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warmpool_core::{AcquireError, BackendError, LeaseError, WarmUpError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
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

impl From<AcquireError> for ApiError {
    fn from(e: AcquireError) -> Self {
        let msg = e.to_string();
        match e {
            AcquireError::UnknownPool(_) => Self::new(StatusCode::NOT_FOUND, "unknown_pool", msg),
            AcquireError::Exhausted { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "pool_exhausted", msg)
            },
            AcquireError::Degraded { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "pool_degraded", msg)
            },
            AcquireError::EngineUnavailable(_) => Self {
                retry_after: Some(Duration::from_secs(2)),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", msg)
            },
            AcquireError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            }
            AcquireError::Create { .. } => Self::new(StatusCode::BAD_GATEWAY, "create_failed", msg),
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        let msg = e.to_string();
        match e {
            LeaseError::UnknownLease(_) => Self::new(StatusCode::NOT_FOUND, "unknown_lease", msg),
            LeaseError::ContainerGone { .. } => Self::new(StatusCode::GONE, "container_gone", msg),
            LeaseError::Backend { source, .. } => match source {
                BackendError::NotFound { what: "file", .. } => {
                    Self::new(StatusCode::NOT_FOUND, "file_not_found", msg)
                }
                BackendError::NotFound { .. } => Self::new(StatusCode::GONE, "container_gone", msg),
                BackendError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "bad_request", msg),
                BackendError::Unavailable(_) => {
                    Self::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", msg)
                }
                _ => Self::new(StatusCode::BAD_GATEWAY, "engine_error", msg),
            },
        }
    }
}

impl From<WarmUpError> for ApiError {
    fn from(e: WarmUpError) -> Self {
        let msg = e.to_string();
        match e {
            WarmUpError::UnknownPool(_) => Self::new(StatusCode::NOT_FOUND, "unknown_pool", msg),
            WarmUpError::Timeout { .. } => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "warm_up_timeout", msg)
            }
        }
    }
}
