//! Using a leased container through the seam: commands, and files streamed in and out (with
//! the path check every backend applies).

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use super::BackendError;

/// A command to run in a leased container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command, as argv; must not be empty.
    pub cmd: Vec<String>,
    /// Bytes written to the command's stdin, which is then closed; `None`: no stdin.
    pub stdin: Option<Vec<u8>>,
    /// Extra environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// Working directory of the command; `None`: the container's.
    pub workdir: Option<String>,
    /// Longest the command may run before its process tree is killed; zero: the
    /// backend's default.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr; the rest is dropped and flagged.
    pub output_limit: usize,
    /// Fires when the command must end early (its lease is ending, or its client hung up):
    /// the backend kills its process tree and answers only once that is done.
    pub stop: Stop,
    /// Run under a terminal of this size (a session only).
    pub tty: Option<super::TermSize>,
    /// Stdin stays open after `stdin` for input the session sends (a session only).
    pub stdin_stream: bool,
}

/// Tells a backend call to end early. It is not part of what a request asks, so any two
/// compare equal.
#[derive(Debug, Clone, Default)]
pub struct Stop(CancellationToken);

impl Stop {
    /// A stop that fires when `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        Self(token)
    }

    /// Whether it has fired.
    pub fn is_stopped(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once it fires (never, for the default).
    pub async fn stopped(&self) {
        self.0.cancelled().await;
    }
}

impl PartialEq for Stop {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Stop {}

/// What an exec produced. Output is kept byte for byte; the API decides how to encode it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the command timed out before it exited.
    pub exit_code: Option<i64>,
    /// The command's stdout, at most `output_limit` bytes.
    pub stdout: Vec<u8>,
    /// The command's stderr, at most `output_limit` bytes.
    pub stderr: Vec<u8>,
    /// The command outlived its timeout and was killed.
    pub timed_out: bool,
    /// Stdout or stderr went past `output_limit`; the excess was dropped.
    pub truncated: bool,
    /// How long the exec took, in milliseconds.
    pub duration_ms: u64,
}

/// A file's bytes crossing the seam, streamed: a large file is never held whole in the daemon.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BackendError>> + Send>>;

/// A file to write or a file read: its length and its bytes.
pub struct FileBody {
    /// The body's length, in bytes.
    pub len: u64,
    /// The bytes, as a stream of chunks.
    pub body: ByteStream,
}

impl FileBody {
    /// A body from bytes already in memory.
    pub fn from_bytes(data: Vec<u8>) -> Self {
        let len = data.len() as u64;
        Self {
            len,
            body: Box::pin(futures_util::stream::once(std::future::ready(Ok(
                Bytes::from(data),
            )))),
        }
    }

    /// Read the whole body into memory (tests, and the fake backend).
    pub async fn collect(self) -> Result<Vec<u8>, BackendError> {
        use futures_util::StreamExt;
        let mut out = Vec::with_capacity(self.len.min(1 << 20) as usize);
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody").field("len", &self.len).finish()
    }
}

/// Check that `path` is absolute, names a file, and has no `..` segment and no NUL byte; return
/// it without the leading `/`.
pub fn checked_path(path: &str) -> Result<&str, BackendError> {
    if !path.starts_with('/') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must be absolute"
        )));
    }
    if path.contains('\0') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must not contain a NUL byte"
        )));
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must not contain '..'"
        )));
    }
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.ends_with('/') {
        return Err(BackendError::Invalid(format!(
            "path {path:?} must name a file"
        )));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::checked_path;

    #[test]
    fn paths_must_be_absolute_files_without_dotdot_or_nul() {
        assert_eq!(checked_path("/tmp/a.txt").unwrap(), "tmp/a.txt");
        assert!(checked_path("tmp/a").is_err());
        assert!(checked_path("/tmp/../etc/passwd").is_err());
        assert!(checked_path("/").is_err());
        assert!(checked_path("/tmp/").is_err());
        assert!(checked_path("/\0").is_err());
        assert!(checked_path("/etc/passwd\0.txt").is_err());
        assert!(checked_path("/a..b").is_ok());
    }
}
