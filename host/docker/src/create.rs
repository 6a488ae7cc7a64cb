//! Image resolution (pulling what is missing), the hardened container create, start, and the
//! pool's setup commands. A container that fails any step after create is removed at once.

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tracing::{info, warn};
use warmpool_core::{BackendError, ContainerSpec, Created, ExecMode, ExecRequest, USED_SUFFIX};

use crate::labels::{HOST, MANAGED, POOL, SPEC};
use crate::{DockerBackend, is_transport, status_of, unavailable};

/// `image`'s ID on the engine of `docker`, or `None` when that engine does not have it.
pub(crate) async fn inspect_id(
    docker: &Docker,
    image: &str,
) -> Result<Option<String>, BackendError> {
    match docker.inspect_image(image).await {
        Ok(i) => {
            i.id.map(Some)
                .ok_or_else(|| image_err(image, "engine returned no image ID"))
        }
        Err(e) if status_of(&e) == Some(404) => Ok(None),
        Err(e) if is_transport(&e) => Err(unavailable(e)),
        Err(e) => Err(image_err(image, e.to_string())),
    }
}

pub(crate) fn image_err(image: &str, message: impl Into<String>) -> BackendError {
    BackendError::Image {
        image: image.to_string(),
        message: message.into(),
    }
}

/// Pull `image`, logging progress once per layer state change rather than per byte.
pub(crate) async fn pull(docker: &Docker, image: &str) -> Result<(), BackendError> {
    let (repo, tag) = split_tag(image);
    info!(image, "image missing locally; pulling");
    let opts = CreateImageOptionsBuilder::default()
        .from_image(repo)
        .tag(tag)
        .build();
    let mut stream = docker.create_image(Some(opts), None, None);
    let mut last: HashMap<String, String> = HashMap::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    return Err(image_err(image, format!("pull failed: {err}")));
                }
                let (id, status) = (info.id.unwrap_or_default(), info.status.unwrap_or_default());
                if last.get(&id) != Some(&status) {
                    info!(image, layer = %id, %status, "pull");
                    last.insert(id, status);
                }
            }
            Err(e) if is_transport(&e) => return Err(unavailable(e)),
            Err(e) => return Err(image_err(image, format!("pull failed: {e}"))),
        }
    }
    info!(image, "pull complete");
    Ok(())
}

/// `repo[:tag]` → (repo, tag); a digest or a registry port is not mistaken for a tag.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// The create body: the pool's spec, hardened by default, and the warmpool labels. With the
/// agent (`entrypoint` is then the image's own entrypoint), the agent is the entrypoint and
/// init, the image's entrypoint and the pool's command run under it, its stdio is the
/// channel (open stdin, no log: nothing through it may be kept by the engine), and it lives in
/// an anonymous volume of its own.
pub fn container_body(
    b: &DockerBackend,
    pool: &str,
    spec: &ContainerSpec,
    image_id: &str,
    entrypoint: Option<Vec<String>>,
) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(MANAGED.into(), "true".into());
    labels.insert(HOST.into(), b.host_id.clone());
    labels.insert(POOL.into(), pool.into());
    labels.insert(SPEC.into(), spec.fingerprint(image_id));
    let mut security_opt = Vec::new();
    if spec.no_new_privileges {
        security_opt.push("no-new-privileges:true".to_string());
    }
    // A read-only root still needs somewhere to write; give it a small private /tmp.
    let tmpfs = spec
        .read_only
        .then(|| HashMap::from([("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string())]));
    let agent = spec.exec == ExecMode::Agent;
    let (entrypoint, cmd) = match entrypoint {
        Some(ep) if agent => (
            Some(vec![crate::agent::PATH.to_string()]),
            ep.into_iter().chain(spec.cmd.iter().cloned()).collect(),
        ),
        _ => (None, spec.cmd.clone()),
    };
    if agent {
        labels.insert(crate::agent::LABEL.into(), "agent".into());
    }
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint,
        cmd: Some(cmd),
        open_stdin: Some(agent),
        stdin_once: Some(false),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        network_disabled: Some(spec.network == "none"),
        host_config: Some(HostConfig {
            // The agent is init itself: it reaps orphans and passes signals on.
            init: Some(spec.init && !agent),
            log_config: agent.then(|| HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            mounts: agent.then(|| {
                vec![Mount {
                    target: Some(crate::agent::DIR.into()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]
            }),
            cap_drop: Some(spec.cap_drop.clone()),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            security_opt: Some(security_opt),
            pids_limit: spec.pids_limit,
            memory: spec.memory,
            // Swap equal to memory: no swap on top of the limit.
            memory_swap: spec.memory,
            nano_cpus: spec.nano_cpus,
            network_mode: Some(spec.network.clone()),
            readonly_rootfs: Some(spec.read_only),
            tmpfs,
            // `None`: the engine's default runtime (placement sent a pool that names one only
            // to engines that list it).
            runtime: spec.runtime.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Create, start and set up container `name`. The core chose the name before asking, so a
/// container this leaves behind on any failure is one the core removes by name.
pub async fn create(
    b: &DockerBackend,
    pool: &str,
    name: &str,
    spec: &ContainerSpec,
) -> Result<Created, BackendError> {
    let t0 = Instant::now();
    let image_id = b.image_for_create(&spec.image, spec.image_source).await?;
    let entrypoint = match spec.exec {
        ExecMode::Agent => Some(b.entrypoint_of(&image_id).await?),
        ExecMode::Engine => None,
    };
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    let body = container_body(b, pool, spec, &image_id, entrypoint);
    let created = b
        .docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| {
            if is_transport(&e) {
                unavailable(e)
            } else {
                BackendError::Create {
                    image: spec.image.clone(),
                    message: e.to_string(),
                }
            }
        })?;
    let id = created.id;
    b.note_kind(&id, name, spec.exec);
    if let Err(e) = finish(b, &id, name, spec).await {
        b.forget(&id).await;
        if let Err(rm) = remove(&b.docker, &id).await {
            warn!(container = %id, error = %rm, "could not remove a container that failed to start");
        }
        return Err(e);
    }
    tracing::debug!(container = %name, ms = t0.elapsed().as_millis() as u64, "created");
    Ok(Created {
        id,
        name: name.to_string(),
        image: spec.image.clone(),
        image_id,
    })
}

/// Start the container (with the agent: put it in, attach, start, wait for it to answer)
/// and run the setup commands. An agent that does not come up fails the create.
async fn finish(
    b: &DockerBackend,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
) -> Result<(), BackendError> {
    let start = async {
        b.docker.start_container(id, None).await.map_err(|e| {
            if is_transport(&e) {
                unavailable(e)
            } else {
                BackendError::Create {
                    image: spec.image.clone(),
                    message: format!("start: {e}"),
                }
            }
        })
    };
    match spec.exec {
        ExecMode::Engine => start.await?,
        ExecMode::Agent => {
            b.agents.install(&b.docker, id).await?;
            b.agents
                .start(&b.docker, id, name, start)
                .await
                .map_err(|e| match e {
                    BackendError::Unavailable(_) | BackendError::Create { .. } => e,
                    other => BackendError::Create {
                        image: spec.image.clone(),
                        message: other.to_string(),
                    },
                })?;
        }
    }
    for cmd in &spec.setup {
        let req = ExecRequest {
            cmd: cmd.clone(),
            timeout: spec.setup_timeout,
            output_limit: 4096,
            ..Default::default()
        };
        let setup_err = |message: String| BackendError::Setup {
            container: id.into(),
            cmd: cmd.clone(),
            message,
        };
        let out = b.run(id, req).await.map_err(|e| setup_err(e.to_string()))?;
        match out.exit_code {
            Some(0) => {}
            Some(code) => {
                let (stdout, stderr) = (
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                );
                let detail = if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                };
                return Err(setup_err(format!("exited {code}: {}", detail.trim())));
            }
            None => {
                return Err(setup_err(format!(
                    "timed out after {:?}",
                    spec.setup_timeout
                )));
            }
        }
    }
    // A container whose command exited during setup is never handed out: the create fails,
    // saying why, and the failure feeds the pool's breaker. Without setup commands there is
    // nothing to check yet (the process was spawned a moment ago); the core's ready check after
    // `lifecycle.start_settle` is what catches a command that exits at once (one the engine
    // reports dead within the settle; under load one can outlive it).
    if spec.setup.is_empty() {
        return Ok(());
    }
    check_running(&b.docker, id, b.agents.last_word(id).await).await
}

/// `Ok` if the container runs; else a create error with its exit code and last log lines (an
/// agent's container: its agent's last word, `agent_word`).
pub async fn check_running(
    docker: &Docker,
    id: &str,
    agent_word: Option<String>,
) -> Result<(), BackendError> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| crate::op_error("inspect", id, e))?;
    if c.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
        return Ok(());
    }
    let report = match agent_word {
        Some(w) => w,
        None => exit_report(docker, id).await,
    };
    Err(BackendError::Create {
        image: c.config.and_then(|c| c.image).unwrap_or_default(),
        message: format!("the container stopped right after it started: {report}"),
    })
}

/// Lines of a stopped container's log kept in its exit report.
const LOG_TAIL: usize = 5;

/// Why a container stopped: its exit code (and OOM, engine error) and its log's last lines.
pub async fn exit_report(docker: &Docker, id: &str) -> String {
    let mut out = match docker.inspect_container(id, None).await {
        Ok(c) => {
            let s = c.state.unwrap_or_default();
            let mut r = format!("exit code {}", s.exit_code.unwrap_or(-1));
            if s.oom_killed == Some(true) {
                r.push_str(", killed for running out of memory");
            }
            if let Some(e) = s.error.filter(|e| !e.is_empty()) {
                r.push_str(&format!(", engine error: {e}"));
            }
            r
        }
        Err(e) => return format!("(no report: {e})"),
    };
    let opts = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&LOG_TAIL.to_string())
        .build();
    let mut logs = docker.logs(id, Some(opts));
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        if text.len() > 2048 {
            break;
        }
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty() {
        out.push_str("; last log lines: ");
        out.push_str(&lines.join(" | "));
    }
    out
}

/// Remove a container (by ID or name) at once: force (SIGKILL, no stop grace) and its anonymous
/// volumes. A container already gone counts as removed; one whose removal is still in progress
/// does not, yet (the core retries until the engine says it is gone).
pub async fn remove(docker: &Docker, id: &str) -> Result<(), BackendError> {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(status_of(&e), Some(404)) => Ok(()),
        Err(e) => Err(crate::op_error("remove", id, e)),
    }
}

/// Mark a leased container on the engine: rename it `<name>-leased`. Nothing inside the
/// container can undo a rename, and the mark survives the loss of the state store.
pub async fn mark_used(docker: &Docker, id: &str, name: &str) -> Result<(), BackendError> {
    let target = format!("{name}{USED_SUFFIX}");
    let opts = bollard::query_parameters::RenameContainerOptionsBuilder::default()
        .name(&target)
        .build();
    match docker.rename_container(id, opts).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // A retry after a lost answer: the engine refuses to rename to the current name.
            if let Ok(c) = docker.inspect_container(id, None).await
                && c.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(target.as_str())
            {
                return Ok(());
            }
            Err(crate::op_error("rename", id, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_are_split_without_mistaking_ports() {
        assert_eq!(split_tag("python:3.12"), ("python", "3.12"));
        assert_eq!(split_tag("python"), ("python", "latest"));
        assert_eq!(
            split_tag("reg:5000/team/img"),
            ("reg:5000/team/img", "latest")
        );
        assert_eq!(
            split_tag("reg:5000/team/img:v1"),
            ("reg:5000/team/img", "v1")
        );
    }
}
