//! Lease hibernation on Docker: `docker checkpoint create` (the container stops, its memory in
//! a checkpoint on the engine's disk) and `docker start --checkpoint`.
//!
//! What the engine can do is read from the engine, never from config:
//! - checkpoints need dockerd's experimental mode, which `GET /info` reports;
//! - the container's runtime (`HostConfig.Runtime`, else the engine's default) must be able
//!   to checkpoint: gVisor's `runsc` can; `runc` needs CRIU, which fails on some kernels (on
//!   this project's machines Debian's criu cannot read the vDSO). The engine's own error on a
//!   checkpoint that left the container running is the answer, with the runtime named.
//!
//! bollard 0.21 has checkpoint create, list and delete, but its start takes no checkpoint, so
//! the restore is one raw `POST /containers/{id}/start?checkpoint=…` over the same endpoint
//! (a unix socket or plain TCP; a TLS or ssh endpoint cannot restore, and says so).

use std::time::Duration;

use bollard::container::{CreateCheckpointOptions, ListCheckpointsOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warmpool_core::{BackendError, Hibernation};

use crate::{DockerBackend, is_transport, lock, op_error, unavailable};

/// The name of every checkpoint the daemon takes (one per container at a time).
pub const CHECKPOINT: &str = "warmpool";

impl DockerBackend {
    /// Whether the engine is in experimental mode, as `GET /info` says.
    async fn experimental(&self) -> Result<(bool, String), BackendError> {
        let info = self.docker.info().await.map_err(unavailable)?;
        Ok((
            info.experimental_build.unwrap_or(false),
            info.default_runtime.unwrap_or_else(|| "runc".into()),
        ))
    }

    /// The runtime container `id` runs under (`default` names the engine's default).
    async fn runtime_of(&self, id: &str, default: &str) -> Result<String, BackendError> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| op_error("inspect", id, e))?;
        Ok(c.host_config
            .and_then(|h| h.runtime)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| default.to_string()))
    }

    pub(crate) async fn checkpoint(&self, id: &str) -> Result<(), BackendError> {
        // A container this backend could not restore is never suspended.
        if let RawEndpoint::None(why) = &self.raw_endpoint {
            return Err(BackendError::Unsupported(why.clone()));
        }
        let (experimental, default) = self.experimental().await?;
        if !experimental {
            return Err(BackendError::Unsupported(
                "the engine is not in experimental mode: checkpoints need dockerd \
                 --experimental (\"experimental\": true in daemon.json)"
                    .into(),
            ));
        }
        let runtime = self.runtime_of(id, &default).await?;
        // A checkpoint left by an earlier suspend whose restore failed half way.
        let _ = self.docker.delete_checkpoint(id, CHECKPOINT, None).await;
        // The stop is reported as a `die`: it is none (see `events.rs`).
        lock(&self.checkpointing).insert(id.to_string());
        // The agent's attach connection ends with the stop; a resume re-attaches.
        self.agents.forget(id).await;
        let opts = CreateCheckpointOptions {
            checkpoint_id: CHECKPOINT.into(),
            checkpoint_dir: None,
            exit: true,
        };
        match self.docker.create_checkpoint(id, opts).await {
            Ok(()) => self.until_stopped(id).await,
            Err(e) if is_transport(&e) => Err(unavailable(e)),
            Err(e) => {
                let running = self
                    .docker
                    .inspect_container(id, None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                if running {
                    lock(&self.checkpointing).remove(id);
                    // The engine refused and the container runs on: it cannot checkpoint
                    // this container, in its own words.
                    Err(BackendError::Unsupported(format!(
                        "runtime {runtime}: {}",
                        engine_message(e)
                    )))
                } else {
                    Err(op_error("checkpoint", id, e))
                }
            }
        }
    }

    /// Wait until the checkpointed container has stopped: the checkpoint's answer can come
    /// while the runtime still holds the sandbox (runsc shows a restored sandbox as paused for
    /// some tens of milliseconds), and until it exits, its memory is not freed and a restore
    /// is refused.
    async fn until_stopped(&self, id: &str) -> Result<(), BackendError> {
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        loop {
            let c = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(|e| op_error("inspect", id, e))?;
            if !c.state.and_then(|s| s.running).unwrap_or(false) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Operation {
                    stage: "checkpoint",
                    container: id.into(),
                    message: format!(
                        "the container still runs {STOP_WITHIN:?} after its checkpoint"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) async fn restore(&self, id: &str) -> Result<(), BackendError> {
        let path = format!("/containers/{id}/start?checkpoint={CHECKPOINT}");
        // Right after a checkpoint, the runtime may still hold the stopped sandbox's ID for a
        // moment ("id already in use", measured: tens of ms after the stop); and Docker 20.10
        // fails a restore whose checkpoint blob containerd's content store still holds from
        // the last restore ("commit failed: content …: already exists") until containerd's
        // garbage collection drops it: ask again.
        let mut tries = 0;
        let (status, body) = loop {
            let (status, body) = self.raw_post(&path).await?;
            let transient = body.contains("already in use") || body.contains("already exists");
            if status == 500 && transient && tries < RESTORE_RETRIES {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            break (status, body);
        };
        match status {
            // 304: already running (an earlier restore whose answer was lost).
            204 | 304 => {}
            404 => {
                return Err(BackendError::NotFound {
                    what: "container",
                    subject: format!("{id} ({body})"),
                });
            }
            _ => {
                return Err(BackendError::Operation {
                    stage: "restore",
                    container: id.into(),
                    message: format!("HTTP {status}: {body}"),
                });
            }
        }
        // The checkpoint served; keeping it would only hold the engine's disk.
        let _ = self.docker.delete_checkpoint(id, CHECKPOINT, None).await;
        Ok(())
    }

    pub(crate) async fn hibernation_of(&self, id: &str) -> Result<Hibernation, BackendError> {
        let c = match self.docker.inspect_container(id, None).await {
            Ok(c) => c,
            Err(e) => {
                return match op_error("inspect", id, e) {
                    BackendError::NotFound { .. } => Ok(Hibernation::Lost),
                    e => Err(e),
                };
            }
        };
        if c.state.and_then(|s| s.running).unwrap_or(false) {
            return Ok(Hibernation::Running);
        }
        let list = self
            .docker
            .list_checkpoints(id, None::<ListCheckpointsOptions>)
            .await
            .map_err(|e| op_error("list checkpoints", id, e))?;
        Ok(if list.iter().any(|c| c.name == CHECKPOINT) {
            Hibernation::Checkpointed
        } else {
            Hibernation::Lost
        })
    }

    /// One `POST` with an empty body, straight to the engine's endpoint: (status, body).
    async fn raw_post(&self, path: &str) -> Result<(u16, String), BackendError> {
        let version = self.docker.client_version().to_string();
        let req = format!(
            "POST /v{version}{path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\
             Content-Type: application/json\r\nConnection: close\r\n\r\n"
        );
        let ep = self.raw_endpoint.clone();
        let fut = async move {
            match ep {
                RawEndpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(&p)
                        .await
                        .map_err(|e| BackendError::Unavailable(format!("connect {p}: {e}")))?;
                    exchange(s, req.as_bytes()).await
                }
                RawEndpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(&a)
                        .await
                        .map_err(|e| BackendError::Unavailable(format!("connect {a}: {e}")))?;
                    exchange(s, req.as_bytes()).await
                }
                RawEndpoint::None(why) => Err(BackendError::Unsupported(why)),
            }
        };
        tokio::time::timeout(RESTORE_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::Unavailable(format!(
                    "the engine did not answer the restore within {RESTORE_TIMEOUT:?}"
                )))
            })
    }
}

/// How long a checkpointed container may take to stop.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// Restores asked again while the runtime still holds the stopped sandbox's ID (100 ms apart).
const RESTORE_RETRIES: u32 = 50;

/// Bound on one restore request.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(110);

/// Where the raw restore request goes.
#[derive(Debug, Clone)]
pub(crate) enum RawEndpoint {
    Unix(String),
    Tcp(String),
    /// Why a restore cannot be sent (a TLS or ssh endpoint).
    None(String),
}

impl RawEndpoint {
    /// The endpoint as the backend was given it (`None`: `DOCKER_HOST`, else the socket).
    pub(crate) fn of(endpoint: Option<&str>, tls: bool) -> Self {
        let ep = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        if tls || ep.starts_with("ssh://") || ep.starts_with("https://") {
            return Self::None(
                "restoring a checkpoint needs a unix socket or plain tcp endpoint (bollard has \
                 no start with a checkpoint, and the daemon sends it raw)"
                    .into(),
            );
        }
        if let Some(p) = ep.strip_prefix("unix://") {
            Self::Unix(p.to_string())
        } else if let Some(a) = ep
            .strip_prefix("tcp://")
            .or_else(|| ep.strip_prefix("http://"))
        {
            Self::Tcp(a.trim_end_matches('/').to_string())
        } else {
            Self::Unix(ep)
        }
    }
}

/// Write `req`, read the whole answer (the engine closes), and split status and body.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> Result<(u16, String), BackendError> {
    let io = |e: std::io::Error| BackendError::Unavailable(format!("restore request: {e}"));
    s.write_all(req).await.map_err(io)?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).await.map_err(io)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| BackendError::Unavailable("the engine sent no HTTP status".into()))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or_default();
    // The engine answers errors as `{"message": …}` (chunked or not): its words.
    let message = body
        .find('{')
        .and_then(|i| {
            serde_json::Deserializer::from_str(&body[i..])
                .into_iter::<serde_json::Value>()
                .next()
        })
        .and_then(|v| v.ok())
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(512).collect());
    Ok((status, message))
}

/// The engine's message in an error it answered.
fn engine_message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        e => e.to_string(),
    }
}
