//! Files in and out of a container through the Engine API's tar archive endpoints, streamed
//! both ways: an upload becomes a tar stream as its bytes arrive, a download is cut out of the
//! engine's tar stream as it comes. The daemon never holds a whole file.

use bollard::Docker;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warmpool_core::{BackendError, ByteStream, FileBody, checked_path};

use crate::op_error;

const BLOCK: usize = 512;

/// The Docker client's timeout for an upload: past any upload that keeps moving (the core's
/// deadline fails one whose bytes stop for a minute).
const UPLOAD_CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Owner for an uploaded file: the container's user as the engine runs it, so a sandbox
/// running as an unprivileged user can change the files it was given. A user or group given
/// by name (`nobody`, `nobody:nogroup`, `1000:staff`, `nobody:0`) is looked up in the
/// container's own `/etc/passwd` and `/etc/group`, read through the archive endpoint (not by
/// exec: the container's processes have no say), as the engine itself does when it starts one.
async fn owner(docker: &Docker, id: &str) -> Result<(u64, u64), BackendError> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| op_error("inspect", id, e))?;
    let user = c.config.and_then(|c| c.user).unwrap_or_default();
    let (u, g) = split_user(&user);
    let named = |s: &str| !s.is_empty() && s.parse::<u64>().is_err();
    let passwd = match named(u) {
        true => Some(read_small(docker, id, "/etc/passwd").await?),
        false => None,
    };
    let group = match g.is_some_and(named) {
        true => Some(read_small(docker, id, "/etc/group").await?),
        false => None,
    };
    resolve_owner(&user, passwd.as_deref(), group.as_deref()).map_err(|why| {
        BackendError::Operation {
            stage: "upload",
            container: id.to_string(),
            message: format!("the file's owner, the pool's user {user:?}: {why}"),
        }
    })
}

/// `user[:group]`.
fn split_user(user: &str) -> (&str, Option<&str>) {
    match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    }
}

/// The uid and gid of `user` (`user[:group]`, each a name or a number), names looked up in the
/// container's `passwd` and `group` files (`None` when not needed). A name alone takes its
/// primary group from `passwd`; a number alone keeps itself as the group; nothing is root.
fn resolve_owner(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u64, u64), String> {
    let (u, g) = split_user(user);
    let (uid, primary) = match u.parse::<u64>() {
        _ if u.is_empty() => (0, 0),
        Ok(n) => (n, n),
        Err(_) => passwd
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && f[0] == u)
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .ok_or_else(|| format!("no user {u:?} in the container's /etc/passwd"))?,
    };
    let gid = match g {
        None | Some("") => primary,
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => group
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("no group {g:?} in the container's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// Largest account file read to resolve a name.
const ACCOUNT_FILE_MAX: u64 = 1 << 20;

/// A small text file of the container (`/etc/passwd`), read through the archive endpoint.
async fn read_small(docker: &Docker, id: &str, path: &str) -> Result<String, BackendError> {
    let unreadable = |why: String| BackendError::Operation {
        stage: "upload",
        container: id.to_string(),
        message: format!("reading {path} to find the pool's user: {why}"),
    };
    let file = get(docker, id, path)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    if file.len > ACCOUNT_FILE_MAX {
        return Err(unreadable(format!("{} bytes is too large", file.len)));
    }
    let bytes = file
        .collect()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Write `file` to `path`; the engine creates missing parent directories.
pub async fn put(
    docker: &Docker,
    id: &str,
    path: &str,
    file: FileBody,
) -> Result<(), BackendError> {
    let rel = checked_path(path)?;
    let (uid, gid) = owner(docker, id).await?;
    let mut header = tar::Header::new_gnu();
    header.set_size(file.len);
    header.set_mode(0o644);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    // The header alone (with a GNU long-name entry before it for a long path): an empty reader
    // writes no data and no padding, and the archive is not finished here.
    let mut prefix = tar::Builder::new(Vec::with_capacity(2 * BLOCK));
    prefix
        .append_data(&mut header, rel, std::io::empty())
        .map_err(|e| BackendError::Invalid(format!("path {path:?}: {e}")))?;
    let prefix = Bytes::from(prefix.get_ref().clone());
    let len = file.len;
    let pad = (BLOCK - (len % BLOCK as u64) as usize) % BLOCK;
    let head = futures_util::stream::once(std::future::ready(Ok(prefix)));
    let mut seen = 0u64;
    let body = file.body.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        if seen > len {
            return Err(std::io::Error::other("the body is longer than its length"));
        }
        Ok(chunk)
    });
    // The padding to a whole block, then the two zero blocks that end an archive.
    let tail = futures_util::stream::once(std::future::ready(Ok(Bytes::from(vec![
        0u8;
        pad + 2 * BLOCK
    ]))));
    let tar = head.chain(body).chain(tail);
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    // The engine answers an upload once it has read the whole body, so the client's timeout on
    // a request (120 s, until the answer starts) would cut a big upload that is still moving.
    // The core bounds an upload by its progress instead (its file deadlines).
    docker
        .clone()
        .with_timeout(UPLOAD_CLIENT_TIMEOUT)
        .upload_to_container(id, Some(opts), bollard::body_try_stream(tar))
        .await
        .map_err(|e| file_error("upload", id, path, e))
}

/// Read the regular file at `path`, as a stream of its bytes.
pub async fn get(docker: &Docker, id: &str, path: &str) -> Result<FileBody, BackendError> {
    checked_path(path)?;
    let opts = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let (id2, path2) = (id.to_string(), path.to_string());
    let stream = docker
        .download_from_container(id, Some(opts))
        .map(move |r| r.map_err(|e| file_error("download", &id2, &path2, e)));
    let mut reader = TarReader {
        inner: Box::pin(stream),
        buf: BytesMut::new(),
    };
    // Skip extended headers until the entry itself.
    let (size, kind) = loop {
        let Some(h) = reader.take(BLOCK).await? else {
            return Err(BackendError::NotFound {
                what: "file",
                subject: path.into(),
            });
        };
        let header = tar::Header::from_byte_slice(&h);
        let size = header
            .entry_size()
            .map_err(|e| BackendError::Invalid(format!("{path}: bad archive: {e}")))?;
        let kind = header.entry_type();
        if matches!(
            kind,
            tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            reader.skip(padded(size)).await?;
            continue;
        }
        break (size, kind);
    };
    if !kind.is_file() {
        return Err(BackendError::Invalid(format!(
            "{path} is not a regular file"
        )));
    }
    let body = futures_util::stream::unfold((reader, size), |(mut reader, left)| async move {
        if left == 0 {
            return None;
        }
        match reader.next_chunk(left).await {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                Some((Ok(chunk), (reader, left - n)))
            }
            Ok(None) => Some((
                Err(BackendError::Invalid("the archive ended early".into())),
                (reader, 0),
            )),
            Err(e) => Some((Err(e), (reader, 0))),
        }
    });
    Ok(FileBody {
        len: size,
        body: Box::pin(body) as ByteStream,
    })
}

/// Unpack the tar stream `body` into directory `dir`, creating it first (the engine's archive
/// endpoint needs its target to exist): a tar of the directory's own entries goes to `/`.
pub async fn put_tar(
    docker: &Docker,
    id: &str,
    dir: &str,
    body: ByteStream,
) -> Result<(), BackendError> {
    let rel = dir.trim_matches('/');
    if !rel.is_empty() {
        let (uid, gid) = owner(docker, id).await?;
        let mut t = tar::Builder::new(Vec::new());
        let mut so_far = String::new();
        for part in rel.split('/') {
            so_far = if so_far.is_empty() {
                part.to_string()
            } else {
                format!("{so_far}/{part}")
            };
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_size(0);
            t.append_data(&mut h, format!("{so_far}/"), std::io::empty())
                .map_err(|e| BackendError::Invalid(format!("path {dir:?}: {e}")))?;
        }
        let head = t
            .into_inner()
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(id, Some(opts), bollard::body_full(head.into()))
            .await
            .map_err(|e| file_error("upload", id, dir, e))?;
    }
    let opts = UploadToContainerOptionsBuilder::default().path(dir).build();
    let body = body.map(|c| c.map_err(std::io::Error::other));
    docker
        .upload_to_container(id, Some(opts), bollard::body_try_stream(body))
        .await
        .map_err(|e| file_error("upload", id, dir, e))
}

/// `path` as the engine's tar stream.
pub async fn get_tar(docker: &Docker, id: &str, path: &str) -> Result<ByteStream, BackendError> {
    let opts = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let (id2, path2) = (id.to_string(), path.to_string());
    let mut stream = docker
        .download_from_container(id, Some(opts))
        .map(move |r| r.map_err(|e| file_error("download", &id2, &path2, e)))
        .peekable();
    // The engine answers a missing path at once: say so before any byte is promised.
    if let Some(Err(e)) = std::pin::Pin::new(&mut stream).peek().await {
        return Err(e.clone());
    }
    Ok(Box::pin(stream))
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Reads a tar stream piece by piece.
struct TarReader {
    inner: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, BackendError>> + Send>>,
    buf: BytesMut,
}

impl TarReader {
    /// Exactly `n` bytes, or `None` at a clean end of the stream.
    async fn take(&mut self, n: usize) -> Result<Option<Bytes>, BackendError> {
        while self.buf.len() < n {
            match self.inner.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(BackendError::Invalid("the archive ended early".into())),
            }
        }
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    async fn skip(&mut self, mut n: u64) -> Result<(), BackendError> {
        while n > 0 {
            let step = n.min(64 << 10) as usize;
            if self.take(step).await?.is_none() {
                return Err(BackendError::Invalid("the archive ended early".into()));
            }
            n -= step as u64;
        }
        Ok(())
    }

    /// Up to `max` bytes: what is buffered, or the next chunk.
    async fn next_chunk(&mut self, max: u64) -> Result<Option<Bytes>, BackendError> {
        if self.buf.is_empty() {
            match self.inner.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
        let n = (self.buf.len() as u64).min(max) as usize;
        Ok(Some(self.buf.split_to(n).freeze()))
    }
}

/// An engine error on a file operation of a live container is about the path (missing, not
/// writable, through a link the engine refuses): the client's input, so a 4xx with the engine's
/// reason, not a gateway error. Only a failure to reach the engine stays one.
fn file_error(
    stage: &'static str,
    id: &str,
    path: &str,
    e: bollard::errors::Error,
) -> BackendError {
    if crate::is_transport(&e) {
        return op_error(stage, id, e);
    }
    match crate::status_of(&e) {
        // The archive endpoint answers 404 for a missing path as well as a missing container.
        Some(404) => BackendError::NotFound {
            what: "file",
            subject: path.into(),
        },
        _ => {
            let msg = match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                other => other.to_string(),
            };
            BackendError::Invalid(format!("{path}: {msg}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_owner;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:app\n";

    #[test]
    fn names_and_numbers_resolve_as_the_engine_runs_them() {
        let r = |u| resolve_owner(u, Some(PASSWD), Some(GROUP));
        assert_eq!(r(""), Ok((0, 0)));
        assert_eq!(r("nobody"), Ok((65534, 65534)));
        assert_eq!(r("app"), Ok((1000, 1001)), "a name takes its primary group");
        assert_eq!(r("nobody:staff"), Ok((65534, 50)));
        assert_eq!(r("nobody:0"), Ok((65534, 0)));
        assert_eq!(r("1000:nogroup"), Ok((1000, 65534)));
        assert_eq!(r("1000:7"), Ok((1000, 7)));
        assert_eq!(r("1000"), Ok((1000, 1000)), "a number alone, as before");
        assert_eq!(r("app:"), Ok((1000, 1001)));
    }

    #[test]
    fn an_unknown_name_is_a_clear_error() {
        let r = |u| resolve_owner(u, Some(PASSWD), Some(GROUP));
        let e = r("ghost").unwrap_err();
        assert!(e.contains("\"ghost\"") && e.contains("/etc/passwd"), "{e}");
        let e = r("nobody:ghosts").unwrap_err();
        assert!(e.contains("\"ghosts\"") && e.contains("/etc/group"), "{e}");
        // A prefix or a field is no match; a line too short is skipped.
        assert!(resolve_owner("nob", Some(PASSWD), None).is_err());
        assert!(resolve_owner("x", Some("x:1\n"), None).is_err());
        assert!(resolve_owner("nobody", None, None).is_err());
    }
}
