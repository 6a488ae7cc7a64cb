//! The audit log: every lifecycle event appended to a file as a JSON line.

use std::time::Duration;

use tracing::warn;

/// Append events as JSON lines, flushing whenever the queue runs dry, until shutdown (after
/// which the events of the shutdown itself are written too).
pub async fn audit_log(
    file: tokio::fs::File,
    mut rx: tokio::sync::broadcast::Receiver<warmpool_core::Event>,
    cancel: tokio_util::sync::CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut out = tokio::io::BufWriter::new(file);
    let mut draining = false;
    loop {
        let next = if draining {
            match rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(_) => break,
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => {
                    // Let the shutdown's own removals land first.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    draining = true;
                    continue;
                }
                r = rx.recv() => r,
            }
        };
        let line = match next {
            Ok(ev) => serde_json::to_string(&ev).unwrap_or_default(),
            Err(RecvError::Lagged(n)) => format!("{{\"kind\":\"lagged\",\"missed\":{n}}}"),
            Err(RecvError::Closed) => break,
        };
        if out
            .write_all(line.as_bytes())
            .await
            .and(out.write_all(b"\n").await)
            .is_err()
        {
            warn!("audit log: write failed; stopping it");
            return;
        }
        if rx.is_empty() {
            let _ = out.flush().await;
        }
    }
    let _ = out.flush().await;
}
