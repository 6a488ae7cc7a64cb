//! The raw Engine API, as the reference: create+start a container hardened like warmpool's,
//! exec in a running one, and remove what the benchmark made (by label).

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;

/// The `warmpool.host` label of the containers the benchmark makes itself.
pub const RAW_HOST: &str = "bench-raw";

/// One create+start through the Engine API, hardened like a warmpool container.
pub async fn raw_create_start(d: &Docker, image: &str) -> (String, f64) {
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        labels: Some(HashMap::from([
            ("warmpool.managed".to_string(), "true".to_string()),
            ("warmpool.host".to_string(), RAW_HOST.to_string()),
        ])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            init: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            network_mode: Some("none".into()),
            memory: Some(512 << 20),
            pids_limit: Some(256),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let c = d.create_container(None, body).await.expect("create");
    d.start_container(&c.id, None).await.expect("start");
    (c.id, t.elapsed().as_secs_f64() * 1000.0)
}

pub async fn raw_remove_all(d: &Docker) {
    remove_host(d, RAW_HOST).await;
}

/// Remove every container labelled `warmpool.host=<host>`.
pub async fn remove_host(d: &Docker, host: &str) {
    let filters = HashMap::from([("label".to_string(), vec![format!("warmpool.host={host}")])]);
    let list = d
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    for c in list {
        let _ = d
            .remove_container(c.id.as_deref().unwrap_or(""), Some(opts.clone()))
            .await;
    }
}

/// One exec through the Engine API in a running container: create, start attached, read the
/// output to the end, inspect the exit code. Returns stdout and milliseconds.
pub async fn raw_exec(d: &Docker, id: &str, cmd: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let exec = d
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let mut stdout = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        d.start_exec(&exec.id, None).await.expect("start exec")
    {
        while let Some(Ok(chunk)) = output.next().await {
            if let bollard::container::LogOutput::StdOut { message } = chunk {
                stdout.push_str(&String::from_utf8_lossy(&message));
            }
        }
    }
    let code = d
        .inspect_exec(&exec.id)
        .await
        .expect("inspect exec")
        .exit_code;
    assert_eq!(code, Some(0), "raw exec {cmd:?} failed");
    (stdout, t.elapsed().as_secs_f64() * 1000.0)
}
