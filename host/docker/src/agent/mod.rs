//! The agent in each container of an `exec: agent` pool: how it gets in, and the channels to
//! it.
//!
//! - **How it gets in.** The agent binary is built with the daemon (`build.rs`) and embedded.
//!   Each container of such a pool gets an anonymous volume at [`DIR`], and the binary is
//!   uploaded into it through the Engine API's archive endpoint before the container starts, so
//!   no image changes, it works on a read-only root, and on every engine the daemon reaches (a
//!   unix socket, TCP, TLS or ssh). The agent is the container's entrypoint and its first
//!   process; the pool's command (after the image's own entrypoint) runs under it.
//! - **Its key.** Each container's key is HMAC-SHA256 of the daemon's master key and the
//!   container's name, so a restarted daemon (with `state_dir`, which keeps the master key)
//!   finds it again, and nothing of it is in the container's filesystem or config: it reaches
//!   the agent as the first bytes on its stdin, which only the daemon can write.
//! - **The channels** ([`channel`]): one per container, kept here by container id, opened at
//!   create, resumed lazily after a drop or a daemon restart.
//! - **Operations** ([`ops`]): exec (buffered and as a session), files, tar, the lease's
//!   environment, and the readings of the reuse scrub.

pub mod channel;
pub mod ops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::UploadToContainerOptionsBuilder;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use warmpool_agent_proto::frame::{Hello, KEY_LEN, NONCE_LEN};
use warmpool_core::{BackendError, BackendEvent};

use channel::{Channel, DeathReport, READY_WITHIN, State};

/// Where the agent lives in each container (an anonymous volume).
pub const DIR: &str = "/.warmpool";
/// The agent's path in each container.
pub const PATH: &str = "/.warmpool/agent";
/// The label that marks a container served by an agent.
pub const LABEL: &str = "warmpool.exec";

/// The agent binary embedded in the daemon.
pub static BINARY: &[u8] = include_bytes!(env!("WARMPOOL_AGENT_BINARY"));

/// The agents of one engine's containers.
pub struct Agents {
    master: [u8; KEY_LEN],
    /// The tar holding the agent binary, as uploaded into each container.
    tar: bytes::Bytes,
    channels: tokio::sync::Mutex<HashMap<String, Arc<Channel>>>,
    deaths: Arc<Mutex<Option<tokio::sync::mpsc::Sender<BackendEvent>>>>,
}

/// Bytes from the operating system's secure generator.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the system's random generator");
    b
}

impl Agents {
    /// Agents under the daemon's `master` key, with the embedded binary (or `binary`, a build
    /// of the tests' own).
    pub fn new(master: [u8; KEY_LEN], binary: Option<Vec<u8>>) -> Self {
        let bin = binary.unwrap_or_else(|| BINARY.to_vec());
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(bin.len() as u64);
        h.set_mode(0o555);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, "agent", bin.as_slice())
            .expect("a tar in memory");
        let tar = tar.into_inner().expect("a tar in memory");
        Self {
            master,
            tar: tar.into(),
            channels: tokio::sync::Mutex::default(),
            deaths: Arc::default(),
        }
    }

    /// A fresh master key, for a daemon that keeps no state.
    pub fn random_master() -> [u8; KEY_LEN] {
        random()
    }

    /// The death notices of agents go to `tx` (the backend's event stream).
    pub fn report_deaths_to(&self, tx: tokio::sync::mpsc::Sender<BackendEvent>) {
        *self.deaths.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn report(&self) -> DeathReport {
        let deaths = self.deaths.clone();
        Arc::new(move |id: &str, reason: String| {
            let tx = deaths.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(tx) = tx {
                let _ = tx.try_send(BackendEvent::Died {
                    id: id.to_string(),
                    reason,
                });
            }
        })
    }

    fn key_for(&self, name: &str) -> [u8; KEY_LEN] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.master).expect("any key length");
        m.update(b"warmpool agent key\0");
        m.update(name.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Put the agent into created (not started) container `id`.
    pub async fn install(&self, docker: &Docker, id: &str) -> Result<(), BackendError> {
        let opts = UploadToContainerOptionsBuilder::default().path(DIR).build();
        docker
            .upload_to_container(id, Some(opts), bollard::body_full(self.tar.clone()))
            .await
            .map_err(|e| crate::op_error("install the agent", id, e))
    }

    /// Attach to created container `id` (named `name`) and send the agent its key; `start`
    /// starts the container; then wait until the agent is up. The channel is kept.
    pub async fn start(
        &self,
        docker: &Docker,
        id: &str,
        name: &str,
        start: impl Future<Output = Result<(), BackendError>>,
    ) -> Result<Arc<Channel>, BackendError> {
        let key = self.key_for(name);
        let nonce: [u8; NONCE_LEN] = random();
        let (ch, ready) = Channel::attach(
            docker,
            id,
            key,
            nonce,
            Hello::start(&key, &nonce),
            true,
            self.report(),
        )
        .await?;
        start.await?;
        if let Err(e) = ch.ready(ready, READY_WITHIN).await {
            ch.closed.cancel();
            return Err(e);
        }
        self.channels
            .lock()
            .await
            .insert(id.to_string(), ch.clone());
        Ok(ch)
    }

    /// The channel to container `id` (named `name`): the one kept, or a new session on a new
    /// attach when it dropped or this daemon never had one (a restart). A dead agent is an
    /// error.
    pub async fn channel(
        &self,
        docker: &Docker,
        id: &str,
        name: &str,
    ) -> Result<Arc<Channel>, BackendError> {
        let mut channels = self.channels.lock().await;
        if let Some(ch) = channels.get(id) {
            match ch.state() {
                State::Up => return Ok(ch.clone()),
                State::Dead(why) => {
                    return Err(BackendError::Operation {
                        stage: "agent",
                        container: id.into(),
                        message: why,
                    });
                }
                State::Dropped(_) => {}
            }
        }
        let key = self.key_for(name);
        let nonce: [u8; NONCE_LEN] = random();
        let (ch, ready) = Channel::attach(
            docker,
            id,
            key,
            nonce,
            Hello::resume(&key, &nonce),
            false,
            self.report(),
        )
        .await?;
        match ch.ready(ready, READY_WITHIN).await {
            Ok(true) => {}
            Ok(false) => {
                ch.kill("an agent answered a resume as a fresh one".into());
                return Err(BackendError::Operation {
                    stage: "agent",
                    container: id.into(),
                    message: "the agent restarted: its state is gone".into(),
                });
            }
            Err(e) => {
                // An agent that does not answer its own key is not ours, or not alive.
                ch.kill(format!("no answer to a resume: {e}"));
                return Err(e);
            }
        }
        channels.insert(id.to_string(), ch.clone());
        Ok(ch)
    }

    /// The last word of container `id`'s agent, if its command ended.
    pub async fn last_word(&self, id: &str) -> Option<String> {
        self.channels
            .lock()
            .await
            .get(id)
            .and_then(|c| c.last_word())
    }

    /// Forget container `id`'s channel (it is being removed).
    pub async fn forget(&self, id: &str) {
        if let Some(ch) = self.channels.lock().await.remove(id) {
            ch.closed.cancel();
        }
    }
}
