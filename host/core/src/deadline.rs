//! Deadlines of the daemon's own on the file calls, whose bodies stream: a whole-call bound
//! would cut a big file that is still moving, and none at all lets an engine (or a client)
//! that stops hold the request forever. So the bound is on waiting:
//!
//! - the engine must start answering within [`CALL_TIMEOUT`], as for any other call: a
//!   download until its first bytes, an upload until it reads the first byte of the body and
//!   again after the last one, until it answers;
//! - while a body streams, no byte moving for [`FILE_STALL`] ends the transfer with an error.
//!   A download counts only the time the daemon waits on the engine for the next bytes, so a
//!   client that reads slowly is never cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::backend::{BackendError, ByteStream, FileBody};
use crate::lifecycle::CALL_TIMEOUT;
use crate::sync::lock;

/// Longest a streaming file body may go without a byte moving while the daemon waits on it.
pub(crate) const FILE_STALL: Duration = Duration::from_secs(60);

/// A download: the engine's answer within [`CALL_TIMEOUT`], then its body under
/// [`FILE_STALL`].
pub(crate) async fn download(
    call: impl Future<Output = Result<FileBody, BackendError>>,
) -> Result<FileBody, BackendError> {
    let file = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(BackendError::Unavailable(format!(
                "the engine did not start the download within {CALL_TIMEOUT:?}"
            )));
        }
    };
    Ok(FileBody {
        len: file.len,
        body: Box::pin(Stalls {
            inner: file.body,
            waiting: None,
            done: false,
        }),
    })
}

/// An upload: `call` is handed the body and must read its first byte within
/// [`CALL_TIMEOUT`], never wait [`FILE_STALL`] for the next one, and answer within
/// [`CALL_TIMEOUT`] of the last.
pub(crate) async fn upload<F, Fut>(file: FileBody, call: F) -> Result<(), BackendError>
where
    F: FnOnce(FileBody) -> Fut,
    Fut: Future<Output = Result<(), BackendError>>,
{
    let watch = Arc::new(Watch {
        moved: Mutex::new(Moved {
            at: Instant::now(),
            phase: Phase::Before,
        }),
        phase_changed: Notify::new(),
    });
    let body = Watched {
        inner: file.body,
        watch: watch.clone(),
    };
    let fut = call(FileBody {
        len: file.len,
        body: Box::pin(body),
    });
    tokio::pin!(fut);
    loop {
        let due = {
            let m = lock(&watch.moved);
            m.at + m.phase.bound()
        };
        tokio::select! {
            r = &mut fut => return r,
            // A new phase has its own bound: start again from it.
            () = watch.phase_changed.notified() => {}
            () = tokio::time::sleep_until(due) => {
                // A byte may have moved while this slept: then wait on from there.
                let m = lock(&watch.moved);
                if m.at + m.phase.bound() <= Instant::now() {
                    return Err(BackendError::Unavailable(m.phase.why()));
                }
            }
        }
    }
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The engine has not asked for the body yet.
    Before,
    /// The body is streaming.
    Streaming,
    /// The body has ended; the engine's answer is awaited.
    After,
}

impl Phase {
    fn bound(self) -> Duration {
        match self {
            Phase::Streaming => FILE_STALL,
            Phase::Before | Phase::After => CALL_TIMEOUT,
        }
    }

    fn why(self) -> String {
        match self {
            Phase::Before => {
                format!("the engine did not start reading the upload within {CALL_TIMEOUT:?}")
            }
            Phase::Streaming => format!("the upload moved no byte for {FILE_STALL:?}"),
            Phase::After => {
                format!("the engine did not answer within {CALL_TIMEOUT:?} of the upload's end")
            }
        }
    }
}

/// When the upload's body last moved, and where it is.
struct Moved {
    at: Instant,
    phase: Phase,
}

/// What an upload's body tells [`upload`]: each move, and a wake-up when the phase changes.
struct Watch {
    moved: Mutex<Moved>,
    phase_changed: Notify,
}

/// An upload's body, telling [`upload`] each time a byte moves.
struct Watched {
    inner: ByteStream,
    watch: Arc<Watch>,
}

impl Watched {
    fn moved(&self, phase: Phase) {
        let before = std::mem::replace(
            &mut *lock(&self.watch.moved),
            Moved {
                at: Instant::now(),
                phase,
            },
        );
        if before.phase != phase {
            self.watch.phase_changed.notify_one();
        }
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if lock(&self.watch.moved).phase == Phase::Before {
            self.moved(Phase::Streaming);
        }
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(_)) => self.moved(Phase::Streaming),
            Poll::Ready(None) => self.moved(Phase::After),
            Poll::Pending => {}
        }
        next
    }
}

/// A download's body that fails once the engine keeps it waiting [`FILE_STALL`] for bytes.
struct Stalls {
    inner: ByteStream,
    /// Started when a read found nothing, dropped when bytes come.
    waiting: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Stream for Stalls {
    type Item = Result<Bytes, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
            self.waiting = None;
            self.done = item.is_none();
            return Poll::Ready(item);
        }
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(FILE_STALL)));
        if waiting.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(BackendError::Unavailable(format!(
                "the download moved no byte for {FILE_STALL:?}"
            )))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn stream(s: impl Stream<Item = Result<Bytes, BackendError>> + Send + 'static) -> FileBody {
        FileBody {
            len: 0,
            body: Box::pin(s),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_that_stops_sending_fails_after_the_stall_bound() {
        let body = futures_util::stream::once(async { Ok(Bytes::from_static(b"ab")) })
            .chain(futures_util::stream::pending());
        let mut file = download(async { Ok(stream(body)) }).await.unwrap().body;
        assert_eq!(file.next().await.unwrap().unwrap(), "ab");
        let t0 = Instant::now();
        let err = file.next().await.unwrap().unwrap_err();
        assert_eq!(t0.elapsed(), FILE_STALL);
        assert!(err.to_string().contains("no byte"), "{err}");
        assert!(file.next().await.is_none(), "it ends after the error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_whose_bytes_keep_coming_is_never_cut() {
        let every = FILE_STALL - Duration::from_secs(1);
        let body = futures_util::stream::iter(0..10u8).then(move |i| async move {
            tokio::time::sleep(every).await;
            Ok(Bytes::from(vec![i]))
        });
        let file = download(async { Ok(stream(body)) }).await.unwrap();
        assert_eq!(file.collect().await.unwrap(), (0..10u8).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn an_engine_that_never_starts_a_download_fails_at_the_call_bound() {
        let t0 = Instant::now();
        let r = download(std::future::pending()).await;
        assert!(matches!(r, Err(BackendError::Unavailable(_))));
        assert_eq!(t0.elapsed(), CALL_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_is_bounded_before_during_and_after_its_body() {
        // Never reads the body.
        let t0 = Instant::now();
        let r = upload(FileBody::from_bytes(vec![1]), |_f| std::future::pending()).await;
        assert!(r.unwrap_err().to_string().contains("start reading"));
        assert_eq!(t0.elapsed(), CALL_TIMEOUT);
        // Reads it all, then never answers.
        let t0 = Instant::now();
        let r = upload(FileBody::from_bytes(vec![1]), |f| async move {
            f.collect().await?;
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        assert!(r.unwrap_err().to_string().contains("upload's end"));
        assert_eq!(t0.elapsed(), CALL_TIMEOUT);
        // A body that stops: FILE_STALL after its last byte.
        let body = futures_util::stream::once(async { Ok(Bytes::from_static(b"a")) })
            .chain(futures_util::stream::pending());
        let t0 = Instant::now();
        let r = upload(stream(body), |f| async move {
            f.collect().await?;
            Ok(())
        })
        .await;
        assert!(r.unwrap_err().to_string().contains("no byte"));
        assert_eq!(t0.elapsed(), FILE_STALL);
    }
}
