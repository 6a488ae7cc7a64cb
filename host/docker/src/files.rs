//! Files in and out of a container through the Engine API's tar archive endpoints.

use bollard::Docker;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use warmpool_core::BackendError;
use warmpool_core::backend::checked_path;

use crate::op_error;

/// Largest file [`get`] reads back.
const MAX_DOWNLOAD: usize = 256 << 20;

/// Owner for an uploaded file: the container's user when it is numeric (`uid[:gid]`), so a
/// sandbox running as an unprivileged user can change the files it was given.
async fn owner(docker: &Docker, id: &str) -> Result<(u64, u64), BackendError> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| op_error("inspect", id, e))?;
    let user = c.config.and_then(|c| c.user).unwrap_or_default();
    let mut parts = user.split(':');
    let uid = parts.next().and_then(|u| u.parse().ok()).unwrap_or(0);
    let gid = parts.next().and_then(|g| g.parse().ok()).unwrap_or(uid);
    Ok((uid, gid))
}

/// Write `data` to `path`; the engine creates missing parent directories.
pub async fn put(docker: &Docker, id: &str, path: &str, data: Vec<u8>) -> Result<(), BackendError> {
    let rel = checked_path(path)?;
    let (uid, gid) = owner(docker, id).await?;
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let mut archive = tar::Builder::new(Vec::with_capacity(data.len() + 1024));
    archive
        .append_data(&mut header, rel, data.as_slice())
        .map_err(|e| BackendError::Invalid(format!("path {path:?}: {e}")))?;
    let tar = archive
        .into_inner()
        .map_err(|e| BackendError::Invalid(e.to_string()))?;
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(id, Some(opts), bollard::body_full(tar.into()))
        .await
        .map_err(|e| file_error("upload", id, path, e))
}

/// Read the regular file at `path`.
pub async fn get(docker: &Docker, id: &str, path: &str) -> Result<Vec<u8>, BackendError> {
    checked_path(path)?;
    let opts = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(id, Some(opts));
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| file_error("download", id, path, e))?;
        if tar.len() + chunk.len() > MAX_DOWNLOAD + 64 * 1024 {
            return Err(BackendError::Invalid(format!(
                "{path} is larger than {MAX_DOWNLOAD} bytes"
            )));
        }
        tar.extend_from_slice(&chunk);
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = archive
        .entries()
        .map_err(|e| BackendError::Invalid(e.to_string()))?;
    let mut entry = entries
        .next()
        .ok_or_else(|| BackendError::NotFound {
            what: "file",
            subject: path.into(),
        })?
        .map_err(|e| BackendError::Invalid(e.to_string()))?;
    if !entry.header().entry_type().is_file() {
        return Err(BackendError::Invalid(format!(
            "{path} is not a regular file"
        )));
    }
    let mut data = Vec::with_capacity(entry.size() as usize);
    std::io::Read::read_to_end(&mut entry, &mut data)
        .map_err(|e| BackendError::Invalid(e.to_string()))?;
    Ok(data)
}

fn file_error(
    stage: &'static str,
    id: &str,
    path: &str,
    e: bollard::errors::Error,
) -> BackendError {
    match crate::status_of(&e) {
        // The archive endpoint answers 404 for a missing path as well as a missing container.
        Some(404) => BackendError::NotFound {
            what: "file",
            subject: path.into(),
        },
        Some(400 | 403 | 500) if e.to_string().contains("read-only") => BackendError::Invalid(
            format!("{path}: the container's file system is read-only there"),
        ),
        _ => op_error(stage, id, e),
    }
}
