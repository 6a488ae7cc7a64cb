//! Directories in and out as tar streams: `PUT /v1/leases/{id}/archive/{*path}` unpacks the
//! body (`application/x-tar`) into the directory at `path`, creating it; `GET` the same route
//! answers the directory (or file) at `path` as a tar stream. Both stream: the daemon never
//! holds a whole archive. An upload is bounded by `server.max_upload_bytes`.
//!
//! The two are not mirror images: GET names its entries under the directory's own name (a
//! GET of `/work/in` gives `in/…`, as `docker cp` does), where PUT unpacks its entries into
//! the directory. What a GET of `/a/b` gives goes back with a PUT to `/a`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use warmpool_core::{Backend, BackendError, ByteStream};

use crate::code::{Code, route_errors};
use crate::core_errors::LEASE_CODES;
use crate::files::UploadErrors;
use crate::{ApiError, Shared};

fn dir_path(path: &str) -> Result<String, ApiError> {
    let p = format!("/{}", path.trim_start_matches('/'));
    if p != "/" {
        warmpool_core::checked_path(p.trim_end_matches('/'))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    Ok(p)
}

/// `PUT /v1/leases/{id}/archive/{*path}`.
#[utoipa::path(put, path = "/v1/leases/{id}/archive/{path}", tag = "files", operation_id = "put_archive",
    params(
        ("id" = String, Path, description = "The lease id"),
        ("path" = String, Path, description = "Absolute path of the directory in the container, without its leading `/`; created if missing. The archive's entries are unpacked into it (a GET of `/a/b` names its entries `b/…`: it goes back with a PUT to `/a`)"),
    ),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "A tar stream"),
    responses(
        (status = 204, description = "Unpacked"),
        UploadErrors,
    ))]
pub async fn put_archive<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let dir = dir_path(&path)?;
    let max = s.max_upload_bytes as u64;
    let too_large = ApiError::new(
        Code::PayloadTooLarge,
        format!("the archive is over server.max_upload_bytes ({max})"),
    );
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(too_large);
    }
    let mut seen = 0u64;
    let stream: ByteStream = Box::pin(body.into_data_stream().map(move |c| {
        let c = c.map_err(|e| BackendError::Invalid(format!("reading the upload: {e}")))?;
        seen += c.len() as u64;
        if seen > max {
            return Err(BackendError::Invalid(format!(
                "the archive is over server.max_upload_bytes ({max})"
            )));
        }
        Ok(c)
    }));
    s.manager.put_tar(&id, &dir, stream).await?;
    Ok(StatusCode::NO_CONTENT)
}

route_errors!(
    /// A read from the lease's container.
    GetErrors = LEASE_CODES
);

/// `GET /v1/leases/{id}/archive/{*path}`.
#[utoipa::path(get, path = "/v1/leases/{id}/archive/{path}", tag = "files", operation_id = "get_archive",
    params(
        ("id" = String, Path, description = "The lease id"),
        ("path" = String, Path, description = "Absolute path of a directory (or file) in the container, without its leading `/`"),
    ),
    responses(
        (status = 200, description = "A tar stream of it, its entries under its own name (`b/…` for `/a/b`, as `docker cp`; a PUT unpacks into the directory it names, so this goes back with a PUT to `/a`)", content_type = "application/x-tar", body = Vec<u8>),
        GetErrors,
    ))]
pub async fn get_archive<B: Backend>(
    State(s): State<Shared<B>>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let p = dir_path(&path)?;
    let q = if p == "/" {
        "/"
    } else {
        p.trim_end_matches('/')
    };
    let stream = s.manager.get_tar(&id, q).await?;
    let body = Body::from_stream(stream.map_err(|e| std::io::Error::other(e.to_string())));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}
