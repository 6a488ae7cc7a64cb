//! # warmpool-docker: the Docker backend, on bollard
//!
//! Implements `warmpool_core::Backend` against the Docker Engine API over its socket (no CLI).
//! The client negotiates the API version with the engine on first contact, so a Debian 20.10
//! engine that speaks only API 1.41 works as well as a current one.
//!
//! Where things live: [`create`] (image pull, hardened create, start, setup, the running check,
//! exit reports, removal and the "used" rename), [`exec`] (exec with capped output, killing an
//! exec's process tree, health probes), [`files`] (tar streamed in and out), [`scrub`] (reuse's
//! baseline, scrub and residue check), [`events`] (death notices, listing and the label sweep),
//! [`hibernate`] (checkpoint and restore of a suspended lease).
//! Every container carries the `warmpool.*` labels in [`labels`], and only containers whose
//! `warmpool.host` is this daemon's are ever touched.

pub mod agent;
pub mod create;
pub mod events;
pub mod exec;
pub mod files;
pub mod hibernate;
mod images;
pub mod labels;
mod resources;
mod route;
pub mod scrub;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warmpool_core::policy_logic::{Probe, ProbeResult};
use warmpool_core::{
    Backend, BackendError, BackendEvent, Baseline, ByteStream, ContainerSpec, Created,
    EngineDescription, ExecOutput, ExecRequest, ExecSession, Existing, FileBody, Hibernation,
    ImageSource, LeaseSetup, Residue, Resources, Runtimes,
};

/// Lock a mutex, whatever a panicking holder left in it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A directory path a tar goes to or comes from: absolute, no `..`, no NUL.
fn checked_dir(path: &str) -> Result<(), BackendError> {
    if path == "/" {
        return Ok(());
    }
    warmpool_core::checked_path(path.trim_end_matches('/')).map(drop)
}

/// Bound on one engine request that is not a stream; a create with a pull has its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a create reuses an image reference's resolved ID instead of asking the engine
/// again. A refill burst then resolves its image once, not once per container. A tag that moves
/// within this window gives a container the new image under the old ID; the image check then
/// sees it as stale and replaces it, exactly as it replaces every container of the old image.
const IMAGE_ID_TTL: Duration = Duration::from_secs(2);

/// PEM files of a TLS client certificate, for [`DockerBackend::connect_with`].
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// The CA that signed the engine's certificate.
    pub ca: std::path::PathBuf,
    /// This client's certificate.
    pub cert: std::path::PathBuf,
    /// This client's private key.
    pub key: std::path::PathBuf,
}

/// The [`Backend`](warmpool_core::Backend) on one Docker engine, through bollard, acting only
/// on containers labelled with its host id.
pub struct DockerBackend {
    pub(crate) docker: Docker,
    pub(crate) host_id: String,
    negotiated: AtomicBool,
    /// Image reference → (its ID, when it was resolved); see [`IMAGE_ID_TTL`].
    image_ids: Mutex<HashMap<String, (String, Instant)>>,
    /// The daemon's other engines, by name: where a missing image can be copied from.
    pub(crate) peers: std::sync::OnceLock<Vec<(String, Docker)>>,
    /// Held while an image is fetched (pulled or copied), one fetch at a time.
    pub(crate) fetching: tokio::sync::Mutex<()>,
    /// The last image copy into this engine, or the one under way, as text.
    pub(crate) image_copy: std::sync::Arc<Mutex<Option<String>>>,
    /// Each image and spec's directory index, for reuse's check of changed directories.
    dir_indexes: scrub::DirIndexes,
    /// The agents in the containers of `exec: agent` pools, and their channels.
    pub(crate) agents: agent::Agents,
    /// Which containers have an agent (and their names, which their keys derive from).
    pub(crate) kinds: Mutex<HashMap<String, route::Kind>>,
    /// The environment of each lease on a container without an agent, merged into its execs.
    pub(crate) engine_env: Mutex<HashMap<String, route::EngineEnv>>,
    /// Each image's own entrypoint, by image ID (an agent runs it under itself).
    pub(crate) entrypoints: Mutex<HashMap<String, Vec<String>>>,
    /// Where a restore's raw request goes (see `hibernate.rs`).
    pub(crate) raw_endpoint: hibernate::RawEndpoint,
    /// Containers being checkpointed: the engine reports their stop as a `die`, which is
    /// none; the first such event of each is dropped.
    pub(crate) checkpointing: Mutex<std::collections::HashSet<String>>,
}

impl DockerBackend {
    /// Connect to `endpoint` (`unix://…`, `tcp://…`, `http://…`), or to `DOCKER_HOST` / the
    /// local socket when `None`. No request is made yet: the engine may still be starting.
    pub fn connect(endpoint: Option<&str>, host_id: &str) -> Result<Self, BackendError> {
        Self::connect_with(endpoint, None, host_id)
    }

    /// Connect to `endpoint` through bollard's own transports: a unix socket, plain HTTP, TLS
    /// with the client certificate `tls` (`tcp://` or `https://`), or `ssh://` (the system's
    /// ssh client and its keys). `None`: `DOCKER_HOST`, else the local socket.
    pub fn connect_with(
        endpoint: Option<&str>,
        tls: Option<&TlsPaths>,
        host_id: &str,
    ) -> Result<Self, BackendError> {
        let secs = REQUEST_TIMEOUT.as_secs();
        let docker = match (endpoint, tls) {
            (Some(ep), Some(t)) => Docker::connect_with_ssl(
                ep,
                &t.key,
                &t.cert,
                &t.ca,
                secs,
                bollard::API_DEFAULT_VERSION,
            ),
            (Some(ep), None) if ep.starts_with("ssh://") => {
                Docker::connect_with_ssh(ep, secs, bollard::API_DEFAULT_VERSION, None)
            }
            (Some(ep), None) => Docker::connect_with_host(ep),
            (None, _) => Docker::connect_with_defaults(),
        }
        .map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot set up a client for {}: {e}",
                endpoint.unwrap_or("DOCKER_HOST or /var/run/docker.sock")
            ))
        })?
        .with_timeout(REQUEST_TIMEOUT);
        Ok(Self {
            docker,
            host_id: host_id.to_string(),
            negotiated: AtomicBool::new(false),
            image_ids: Mutex::default(),
            peers: std::sync::OnceLock::new(),
            fetching: tokio::sync::Mutex::new(()),
            image_copy: std::sync::Arc::default(),
            dir_indexes: scrub::DirIndexes::default(),
            agents: agent::Agents::new(agent::Agents::random_master(), None),
            kinds: Mutex::default(),
            engine_env: Mutex::default(),
            entrypoints: Mutex::default(),
            raw_endpoint: hibernate::RawEndpoint::of(endpoint, tls.is_some()),
            checkpointing: Mutex::default(),
        })
    }

    /// Use `master` as the agents' master key (kept in `server.state_dir`, so a restarted
    /// daemon reaches the agents of the containers it finds), and `binary` instead of the
    /// embedded agent (a test's own build).
    pub fn with_agents(mut self, master: [u8; 32], binary: Option<Vec<u8>>) -> Self {
        self.agents = agent::Agents::new(master, binary);
        self
    }

    /// `image`'s ID for a create: resolved within the last [`IMAGE_ID_TTL`], or now (pulling the
    /// image if the engine lacks it).
    pub(crate) async fn image_for_create(
        &self,
        image: &str,
        source: ImageSource,
    ) -> Result<String, BackendError> {
        let cached = {
            let ids = self.image_ids.lock().unwrap_or_else(|p| p.into_inner());
            ids.get(image)
                .filter(|(_, at)| at.elapsed() < IMAGE_ID_TTL)
                .map(|(id, _)| id.clone())
        };
        if let Some(id) = cached {
            return Ok(id);
        }
        let id = self.ensure_image(image, source).await?;
        let mut ids = self.image_ids.lock().unwrap_or_else(|p| p.into_inner());
        // Pools use a handful of images; forget the expired ones whenever one is added.
        ids.retain(|_, (_, at)| at.elapsed() < IMAGE_ID_TTL);
        ids.insert(image.to_string(), (id.clone(), Instant::now()));
        Ok(id)
    }

    /// The host id its containers are labelled with (`warmpool.host`).
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The bollard client, for callers that talk to the engine directly (tests, benches).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Settle the API version with the engine once; it answers with the highest it speaks.
    async fn negotiate(&self) -> Result<(), BackendError> {
        if self.negotiated.load(Ordering::Acquire) {
            return Ok(());
        }
        let d = self
            .docker
            .clone()
            .negotiate_version()
            .await
            .map_err(unavailable)?;
        tracing::info!(api = %d.client_version(), "negotiated Docker API version");
        self.negotiated.store(true, Ordering::Release);
        Ok(())
    }
}

/// Any failure to reach the engine at all.
pub(crate) fn unavailable(e: DockerError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// Whether an error means the engine could not be reached (rather than that it said no).
pub(crate) fn is_transport(e: &DockerError) -> bool {
    !matches!(
        e,
        DockerError::DockerResponseServerError { .. }
            | DockerError::JsonDataError { .. }
            | DockerError::JsonSerdeError { .. }
            | DockerError::DockerStreamError { .. }
    )
}

pub(crate) fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Map an engine error met at `stage` on `container`.
pub(crate) fn op_error(stage: &'static str, container: &str, e: DockerError) -> BackendError {
    if is_transport(&e) {
        return unavailable(e);
    }
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => BackendError::NotFound {
            what: "container",
            subject: format!("{container} ({message})"),
        },
        DockerError::DockerResponseServerError { message, .. } => BackendError::Operation {
            stage,
            container: container.to_string(),
            message,
        },
        other => BackendError::Operation {
            stage,
            container: container.to_string(),
            message: other.to_string(),
        },
    }
}

impl Backend for DockerBackend {
    async fn create(
        &self,
        pool: &str,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<Created, BackendError> {
        self.negotiate().await?;
        create::create(self, pool, name, spec).await
    }

    async fn destroy(&self, id_or_name: &str) -> Result<(), BackendError> {
        let id = {
            let kinds = lock(&self.kinds);
            kinds
                .iter()
                .find(|(id, k)| {
                    id.as_str() == id_or_name
                        || matches!(k, route::Kind::Agent(n) if n == id_or_name)
                })
                .map(|(id, _)| id.clone())
        };
        if let Some(id) = id {
            self.forget(&id).await;
        }
        create::remove(&self.docker, id_or_name).await
    }

    async fn mark_used(&self, id: &str, name: &str) -> Result<(), BackendError> {
        create::mark_used(&self.docker, id, name).await
    }

    async fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, BackendError> {
        self.run(id, req).await
    }

    async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), BackendError> {
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::put_file(&ch, path, file).await,
            None => files::put(&self.docker, id, path, file).await,
        }
    }

    async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, BackendError> {
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::get_file(ch, path).await,
            None => files::get(&self.docker, id, path).await,
        }
    }

    async fn exec_session(
        &self,
        id: &str,
        mut req: ExecRequest,
    ) -> Result<ExecSession, BackendError> {
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::session(ch, req).await,
            None => {
                self.merge_env(id, &mut req);
                exec::session(&self.docker, id, req).await
            }
        }
    }

    async fn lease_setup(&self, id: &str, setup: &LeaseSetup) -> Result<(), BackendError> {
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::lease_setup(&ch, setup).await,
            None => {
                if !setup.secrets.is_empty() {
                    return Err(BackendError::Invalid(
                        "secrets need a pool with `exec: agent`: through the engine's exec they \
                         would be part of each exec's configuration on the engine"
                            .into(),
                    ));
                }
                lock(&self.engine_env)
                    .insert(id.to_string(), (setup.env.clone(), setup.workdir.clone()));
                for f in &setup.files {
                    files::put(
                        &self.docker,
                        id,
                        &f.path,
                        FileBody::from_bytes(f.content.to_vec()),
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    async fn put_tar(&self, id: &str, dir: &str, body: ByteStream) -> Result<(), BackendError> {
        checked_dir(dir)?;
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::put_tar(&ch, dir, body).await,
            None => files::put_tar(&self.docker, id, dir, body).await,
        }
    }

    async fn get_tar(&self, id: &str, path: &str) -> Result<ByteStream, BackendError> {
        checked_dir(path)?;
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::get_tar(ch, path).await,
            None => files::get_tar(&self.docker, id, path).await,
        }
    }

    async fn update_resources(&self, id: &str, r: Resources) -> Result<(), BackendError> {
        resources::update(&self.docker, id, r).await
    }

    async fn probe(&self, id: &str, probe: &Probe) -> ProbeResult {
        match (probe, self.agent_of(id).await) {
            (Probe::Exec { argv, timeout_ms }, Ok(Some(ch))) => {
                let req = ExecRequest {
                    cmd: argv.clone(),
                    timeout: Duration::from_millis(*timeout_ms),
                    output_limit: 2048,
                    ..Default::default()
                };
                exec::judge(agent::ops::exec(&ch, &req).await)
            }
            (_, Err(e)) => ProbeResult::Error {
                reason: e.to_string(),
            },
            _ => exec::probe(&self.docker, id, probe).await,
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, BackendError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) if is_transport(&e) => Err(unavailable(e)),
            Err(e) => Err(BackendError::Image {
                image: image.into(),
                message: e.to_string(),
            }),
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.docker.ping().await.map_err(unavailable)?;
        self.negotiate().await
    }

    async fn describe(&self) -> Result<EngineDescription, BackendError> {
        self.negotiate().await?;
        let v = self.docker.version().await.map_err(unavailable)?;
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(unavailable)?;
        let mut tags: Vec<String> = images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect();
        tags.sort();
        tags.dedup();
        let cv = self.docker.client_version();
        Ok(EngineDescription {
            version: v.version,
            api_version: Some(format!("{}.{}", cv.major_version, cv.minor_version)),
            images: tags,
            image_copy: self.last_copy(),
        })
    }

    async fn runtimes(&self) -> Result<Runtimes, BackendError> {
        self.negotiate().await?;
        let info = self.docker.info().await.map_err(unavailable)?;
        let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        names.sort();
        Ok(Runtimes {
            names,
            default: info.default_runtime,
        })
    }

    async fn suspend(&self, id: &str) -> Result<(), BackendError> {
        self.negotiate().await?;
        self.checkpoint(id).await
    }

    async fn resume(&self, id: &str) -> Result<(), BackendError> {
        self.negotiate().await?;
        self.restore(id).await
    }

    async fn hibernation(&self, id: &str) -> Result<Hibernation, BackendError> {
        self.negotiate().await?;
        self.hibernation_of(id).await
    }

    async fn list(&self) -> Result<Vec<Existing>, BackendError> {
        self.negotiate().await?;
        events::list(self).await
    }

    async fn sweep(&self) -> Result<usize, BackendError> {
        self.negotiate().await?;
        events::sweep(self).await
    }

    async fn watch(&self, tx: mpsc::Sender<BackendEvent>, cancel: CancellationToken) {
        // A dead, silent or forged agent is reported as its container's death.
        self.agents.report_deaths_to(tx.clone());
        events::watch(self, tx, cancel).await
    }

    async fn exit_report(&self, id: &str) -> String {
        // The engine keeps no log of an agent's container: its agent's last word says what
        // its command printed last.
        if let Some(word) = self.agents.last_word(id).await {
            return word;
        }
        create::exit_report(&self.docker, id).await
    }

    async fn check_running(&self, id: &str) -> Result<(), BackendError> {
        let r = create::check_running(&self.docker, id, None).await;
        match r {
            Err(BackendError::Create { image, .. }) => {
                let word = match self.agents.last_word(id).await {
                    Some(w) => w,
                    None => create::exit_report(&self.docker, id).await,
                };
                Err(BackendError::Create {
                    image,
                    message: format!("the container stopped right after it started: {word}"),
                })
            }
            other => other,
        }
    }

    async fn baseline(&self, id: &str) -> Result<Baseline, BackendError> {
        let ch = self.agent_of(id).await?;
        let inside = self.inside(id, ch.as_deref());
        scrub::baseline(&self.docker, id, &inside, &self.dir_indexes).await
    }

    async fn scrub(&self, id: &str, baseline: &Baseline) -> Result<(), BackendError> {
        lock(&self.engine_env).remove(id);
        let ch = self.agent_of(id).await?;
        scrub::scrub(&self.inside(id, ch.as_deref()), baseline).await
    }

    async fn residue(&self, id: &str, baseline: &Baseline) -> Result<Vec<Residue>, BackendError> {
        let ch = self.agent_of(id).await?;
        let inside = self.inside(id, ch.as_deref());
        scrub::residue(&self.docker, id, &inside, baseline).await
    }
}
