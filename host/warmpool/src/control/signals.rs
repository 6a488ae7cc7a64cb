//! Signals into the inbox: SIGHUP asks for a reload, SIGTERM and SIGINT for a shutdown (a
//! second one, while shutting down, for an exit without waiting). If the supervisor is gone, a
//! stop signal cancels the daemon directly, so the daemon can always be stopped.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::{Control, Inbox, Source};

/// Listen for signals until the process exits.
pub fn spawn(
    inbox: Inbox,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Not tracked by the manager's tracker: the second signal must be heard during shutdown.
    let _ = tracker;
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                biased;
                s = term.recv() => { if s.is_none() { return; } Control::Shutdown("SIGTERM") }
                s = int.recv() => { if s.is_none() { return; } Control::Shutdown("SIGINT") }
                s = hup.recv() => {
                    if s.is_none() { return; }
                    Control::Reload { source: Source::Signal, reply: None }
                }
            };
            let stop = matches!(c, Control::Shutdown(_));
            if !inbox.send(c).await && stop {
                warn!("the control supervisor is gone; stopping directly");
                cancel.cancel();
            }
        }
    });
    Ok(())
}
