//! A guest's stdout and stderr: kept as a short tail, never written anywhere, never refused.
//!
//! Python guests (componentize-py) print an uncaught exception's traceback to stderr before
//! they trap; that tail is what says *why* the guest failed, so it goes into the error the
//! host reports. A guest cannot use it to flood anything: only the last [`TAIL`] bytes are
//! kept, and writes are always accepted at once (a full pipe would otherwise park the guest,
//! or trap it with a message about the pipe instead of its own).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of guest output kept: enough for a traceback's last frames and its message.
pub const TAIL: usize = 2048;

/// Largest single write a guest is permitted; more is accepted over several writes.
const PERMIT: usize = 64 * 1024;

/// The last [`TAIL`] bytes a guest wrote to stdout or stderr (both go to one tail).
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<u8>>>);

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(TAIL)..];
        let over = (t.len() + bytes.len()).saturating_sub(TAIL);
        t.drain(..over);
        t.extend(bytes);
    }

    /// The kept output as text, trimmed; empty when the guest wrote nothing.
    pub fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = t.as_slices();
        let mut v = Vec::with_capacity(t.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).trim().to_string()
    }

    /// Forget what was kept (a new call starts with an empty tail).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl IsTerminal for Tail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Tail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Tail {
    async fn ready(&mut self) {}
}

impl OutputStream for Tail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl tokio::io::AsyncWrite for Tail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let t = Tail::default();
        t.push(b"first line\n");
        assert_eq!(t.text(), "first line");
        t.push(&vec![b'x'; 3 * TAIL]);
        t.push(b"\nValueError: the end");
        let s = t.text();
        assert_eq!(s.len(), TAIL);
        assert!(s.ends_with("ValueError: the end"), "{s}");
        t.clear();
        assert_eq!(t.text(), "");
    }
}
