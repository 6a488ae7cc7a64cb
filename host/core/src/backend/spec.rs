//! What a pool runs and what the engine holds: the container spec, a container the backend
//! made, one it found, and the engine-side "used" mark.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What to run for one pool: image and container settings. Serialised (stably, via `BTreeMap`s)
/// to hash the `warmpool.spec` label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    /// Image reference to run (`repo[:tag]` or a digest); pulled when missing.
    pub image: String,
    /// Command the container runs, as argv (the config's default is `sleep infinity`).
    pub cmd: Vec<String>,
    /// Environment variables of the container.
    pub env: BTreeMap<String, String>,
    /// Working directory of the container; `None`: the image's.
    pub workdir: Option<String>,
    /// User the container runs as (`user[:group]`, by name or ID); `None`: the image's.
    pub user: Option<String>,
    /// Extra labels on each container; the `warmpool.*` keys are reserved for the daemon.
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPU limit in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    /// Most processes the container may run at once; `None`: the engine's default.
    pub pids_limit: Option<i64>,
    /// The OCI runtime the engine runs the container with (`runsc` for gVisor); `None`: the
    /// engine's default. Left out of the fingerprint when `None`, so that the containers of
    /// pools naming no runtime keep the fingerprint they had before the setting existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Docker network mode; `none` by default so a sandbox cannot reach anything.
    pub network: String,
    /// Mount the root filesystem read-only; the container then gets a private `/tmp` tmpfs.
    pub read_only: bool,
    /// Hardening, loosened per pool only on purpose.
    pub init: bool,
    /// Linux capabilities dropped (the config's default is `ALL`).
    pub cap_drop: Vec<String>,
    /// Linux capabilities added back after `cap_drop`.
    pub cap_add: Vec<String>,
    /// Set `no-new-privileges`, so setuid binaries cannot gain privileges.
    pub no_new_privileges: bool,
    /// How the daemon runs commands and moves files in the container: through its agent, or
    /// through the engine's exec and archive endpoints.
    pub exec: ExecMode,
    /// Commands that must each exit 0 before the container counts as ready.
    pub setup: Vec<Vec<String>>,
    /// Bound on each setup command.
    #[serde(skip)]
    pub setup_timeout: Duration,
    /// How an engine that lacks the image gets it. Not part of the fingerprint: it changes
    /// nothing about the container.
    #[serde(skip)]
    pub image_source: ImageSource,
}

/// How the daemon talks to a pool's containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Through warmpool's agent inside each container: exec in milliseconds, streaming,
    /// terminals, per-lease environment and secrets, a scrub without a shell in the image.
    #[default]
    Agent,
    /// Through the engine's exec and archive endpoints (about 50 ms per exec; needs `/bin/sh`
    /// in the image for the kill and the scrub).
    Engine,
}

/// How an engine that lacks a pool's image gets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageSource {
    /// Pull it from its registry; when the pull fails, copy it from another engine that has it.
    #[default]
    Pull,
    /// Copy it from another engine that has it (export streamed into load); pull it when none
    /// has it.
    Copy,
    /// Never: a create on an engine without the image fails.
    None,
}

impl ContainerSpec {
    /// What the `warmpool.spec` label holds: 16 hex digits of sha256 over the spec (as stable
    /// JSON) and the image ID. A container is re-adopted at restart only when its label equals
    /// the fingerprint of the pool's current spec and the image's current ID.
    pub fn fingerprint(&self, image_id: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("a spec always serialises"));
        h.update(b"\0");
        h.update(image_id.as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// The tmpfs mounts a client can write to: `/dev/shm` always, `/dev/mqueue` for POSIX
    /// message queues, and the private `/tmp` a read-only root gets. A reuse empties them all.
    pub fn tmpfs_paths(&self) -> Vec<String> {
        let mut v = vec!["/dev/shm".to_string(), "/dev/mqueue".to_string()];
        if self.read_only {
            v.push("/tmp".into());
        }
        v
    }
}

/// What [`Backend::mark_used`] appends to a container's name: the engine-side mark of a
/// container that was leased once. Backends strip it again in [`Existing::name`].
pub const USED_SUFFIX: &str = "-leased";

/// A container of this daemon's host id that the engine already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// The engine's container ID.
    pub id: String,
    /// The name as the core chose it, without the engine-side "used" mark.
    pub name: String,
    /// The `warmpool.pool` label, if any.
    pub pool: Option<String>,
    /// The `warmpool.spec` label, if any.
    pub fingerprint: Option<String>,
    /// The image reference the container was created from.
    pub image: String,
    /// The ID of the image the container runs.
    pub image_id: String,
    /// Whether the container is running now.
    pub running: bool,
    /// The engine-side mark [`Backend::mark_used`] leaves: this container was leased once.
    pub used: bool,
    /// When the engine created the container (whole seconds).
    pub created: SystemTime,
}

/// A container the backend made; the pool core tracks it by `name` (which it chose) and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The engine's container ID.
    pub id: String,
    /// The name the core chose and asked for.
    pub name: String,
    /// The image reference and the image ID it resolved to at create time.
    pub image: String,
    /// The ID `image` resolved to when the container was created.
    pub image_id: String,
}
