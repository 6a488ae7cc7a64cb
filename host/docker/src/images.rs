//! Bringing a missing image to an engine: a pull from its registry, or a copy from another
//! engine of the same daemon that has it (the Engine API's image export streamed into this
//! engine's image load, never through a file). Which comes first is the pool's
//! `image_source`. One fetch at a time per engine: a refill burst on an engine that lacks the
//! image fetches it once, and the creates behind it find it there.

use std::time::Instant;

use bollard::Docker;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};
use warmpool_core::{BackendError, ImageSource};

use crate::create::{image_err, inspect_id, pull};
use crate::{DockerBackend, is_transport, unavailable};

/// Chunks of an export in flight between the two engines.
const COPY_BUFFER: usize = 8;
/// The export arrives in whatever pieces the network gave (often a few KiB); they are gathered
/// into chunks of this size before the load sends them, so the load's request is written in
/// large pieces rather than as thousands of tiny HTTP chunks.
const COPY_CHUNK: usize = 256 << 10;
/// A copy's progress is logged and shown every this many bytes.
const PROGRESS_EVERY: u64 = 8 << 20;

impl DockerBackend {
    /// `image`'s ID on this engine, fetching the image first as `source` says if it lacks it.
    pub(crate) async fn ensure_image(
        &self,
        image: &str,
        source: ImageSource,
    ) -> Result<String, BackendError> {
        if let Some(id) = inspect_id(&self.docker, image).await? {
            return Ok(id);
        }
        let _one = self.fetching.lock().await;
        // Another create may have fetched it while this one waited.
        if let Some(id) = inspect_id(&self.docker, image).await? {
            return Ok(id);
        }
        match source {
            ImageSource::None => {
                return Err(image_err(
                    image,
                    "not on this engine, and the pool's image_source is none",
                ));
            }
            ImageSource::Pull => {
                if let Err(e) = pull(&self.docker, image).await {
                    if matches!(e, BackendError::Unavailable(_)) {
                        return Err(e);
                    }
                    match self.copy_from_peer(image).await {
                        Ok(true) => {}
                        Ok(false) => return Err(e),
                        Err(c) => {
                            return Err(image_err(image, format!("{e}; a copy failed too: {c}")));
                        }
                    }
                }
            }
            ImageSource::Copy => {
                if !self.copy_from_peer(image).await? {
                    pull(&self.docker, image).await?;
                }
            }
        }
        inspect_id(&self.docker, image)
            .await?
            .ok_or_else(|| image_err(image, "the engine still lacks it after the fetch"))
    }

    /// Copy `image` from the first peer engine that has it. `Ok(false)`: no peer has it.
    async fn copy_from_peer(&self, image: &str) -> Result<bool, BackendError> {
        let peers = self.peers.get().cloned().unwrap_or_default();
        for (peer, docker) in peers {
            match inspect_id(&docker, image).await {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(e) => {
                    warn!(image, from = %peer, error = %e, "cannot ask a peer engine for the image");
                    continue;
                }
            }
            self.copy(image, &peer, &docker).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stream `image` from `docker` (engine `peer`) into this engine's image load.
    async fn copy(&self, image: &str, peer: &str, from: &Docker) -> Result<(), BackendError> {
        let t0 = Instant::now();
        info!(image, from = %peer, "image missing on this engine; copying it from a peer engine");
        self.set_copy(Some(format!("copying {image} from {peer}: starting")));
        // The export runs in its own task and feeds the load through a bounded channel, so
        // neither side holds more than a few chunks.
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(COPY_BUFFER);
        let (from, name, peer_name) = (from.clone(), image.to_string(), peer.to_string());
        let progress = self.image_copy.clone();
        let exporter = tokio::spawn(async move {
            let mut export = std::pin::pin!(from.export_image(&name));
            let mut sent: u64 = 0;
            let mut gathered = BytesMut::new();
            let mut ended = false;
            while !ended {
                let chunk = match export.next().await {
                    Some(Ok(b)) => {
                        gathered.extend_from_slice(&b);
                        if gathered.len() < COPY_CHUNK {
                            continue;
                        }
                        Ok(gathered.split().freeze())
                    }
                    Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
                    None if gathered.is_empty() => break,
                    None => {
                        ended = true;
                        Ok(gathered.split().freeze())
                    }
                };
                let failed = chunk.is_err();
                if let Ok(c) = &chunk {
                    let before = sent / PROGRESS_EVERY;
                    sent += c.len() as u64;
                    if sent / PROGRESS_EVERY != before {
                        info!(image = %name, from = %peer_name, bytes = sent, "image copy");
                        *progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                            "copying {name} from {peer_name}: {sent} bytes so far"
                        ));
                    }
                }
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
            sent
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut load = std::pin::pin!(self.docker.import_image_stream(opts, body, None));
        let mut result = Ok(());
        while let Some(item) = load.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        result = Err(image_err(image, format!("load from {peer}: {err}")));
                    }
                }
                Err(e) if is_transport(&e) => {
                    result = Err(unavailable(e));
                    break;
                }
                Err(e) => {
                    result = Err(image_err(image, format!("load from {peer}: {e}")));
                    break;
                }
            }
        }
        let sent = exporter.await.unwrap_or(0);
        let ms = t0.elapsed().as_millis();
        match &result {
            Ok(()) => {
                info!(image, from = %peer, bytes = sent, ms, "image copied from a peer engine");
                self.set_copy(Some(format!(
                    "copied {image} from {peer}: {sent} bytes in {ms} ms"
                )));
            }
            Err(e) => {
                warn!(image, from = %peer, bytes = sent, error = %e, "image copy failed");
                self.set_copy(Some(format!("copy of {image} from {peer} failed: {e}")));
            }
        }
        result
    }

    fn set_copy(&self, s: Option<String>) {
        *self.image_copy.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The last image copy into this engine, for `GET /v1/engines`.
    pub(crate) fn last_copy(&self) -> Option<String> {
        self.image_copy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The other engines of the daemon, which a missing image may be copied from. Set once,
    /// after every engine's client exists.
    pub fn set_peers(&self, peers: Vec<(String, Docker)>) {
        let _ = self.peers.set(peers);
    }
}
