//! Operations over an agent's channel: exec (buffered, and as a session for streaming and
//! terminals) in [`exec`], files, directories and the lease's set-up in [`files`], and the
//! readings and actions of the reuse scrub in [`scrub`]. What they share is here.

mod exec;
mod files;
mod scrub;

pub use exec::{exec, session};
pub use files::{get_file, get_tar, lease_setup, put_file, put_tar};
pub use scrub::{baseline, inspect, scrub};

use std::time::Duration;

use warmpool_agent_proto::msg::{Ev, Req};
use warmpool_core::BackendError;

use super::channel::{Channel, OpEvents};

/// Largest chunk sent in one frame.
pub(super) const CHUNK: usize = 64 << 10;

/// How long a request that is not an exec may take to be answered.
pub(super) const ANSWER_WITHIN: Duration = Duration::from_secs(120);

pub(super) fn failed(ch: &Channel, stage: &'static str, message: String) -> BackendError {
    BackendError::Operation {
        stage,
        container: ch.container.clone(),
        message,
    }
}

/// The queue of an operation ended before its answer: the connection dropped.
pub(super) fn dropped(ch: &Channel) -> BackendError {
    BackendError::Unavailable(format!(
        "the agent channel to {} dropped during the call",
        ch.container
    ))
}

/// Wait for the answer to a request that answers `Done` or `Failed`.
pub(super) async fn done(
    ch: &Channel,
    rx: &mut OpEvents,
    stage: &'static str,
) -> Result<(), BackendError> {
    match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
        Ok(Some(Ev::Done)) => Ok(()),
        Ok(Some(Ev::Failed(why))) => Err(BackendError::Invalid(why)),
        Ok(Some(other)) => Err(failed(ch, stage, format!("unexpected answer {other:?}"))),
        Ok(None) => Err(dropped(ch)),
        Err(_) => Err(BackendError::Unavailable(format!(
            "the agent did not answer {stage} within {ANSWER_WITHIN:?}"
        ))),
    }
}

pub(super) async fn send_bytes(
    ch: &Channel,
    id: u32,
    data: &[u8],
    wrap: fn(Vec<u8>) -> Req,
) -> Result<(), BackendError> {
    for c in data.chunks(CHUNK) {
        ch.send(id, wrap(c.to_vec())).await?;
    }
    Ok(())
}
