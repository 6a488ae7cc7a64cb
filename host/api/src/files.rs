//! A lease's files, one at a time, streamed both ways: `PUT` and `GET
//! /v1/leases/{id}/files/{*path}` (whole directories as tar are `archive.rs`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use warmpool_core::{Backend, BackendError, FileBody};

use crate::code::{Code, route_errors};
use crate::core_errors::LEASE_CODES;
use crate::{ApiError, Shared};

/// Paths arrive without their leading slash; they are absolute inside the container.
fn container_path(path: &str) -> Result<String, ApiError> {
    let p = format!("/{}", path.trim_start_matches('/'));
    warmpool_core::checked_path(&p).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(p)
}

route_errors!(
    /// What an upload (a file, or a directory as tar) answers: an operation on the lease's
    /// container (a bad path or archive is 400 `bad_request`), with a body that may be past
    /// `server.max_upload_bytes` (413).
    pub(crate) UploadErrors = LEASE_CODES,
    [Code::PayloadTooLarge],
);

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
        UploadErrors,
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
            Code::PayloadTooLarge,
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

route_errors!(
    /// A read from the lease's container.
    DownloadErrors = LEASE_CODES
);

/// `GET /v1/leases/{id}/files/{*path}`: the file, streamed out of the container as it is read.
#[utoipa::path(get, path = "/v1/leases/{id}/files/{path}", tag = "files", operation_id = "get_file",
    params(
        ("id" = String, Path, description = "The lease id"),
        ("path" = String, Path, description = "Absolute path in the container, without its leading `/`"),
    ),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        DownloadErrors,
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
