//! When the pool's image tag moves to a new image ID, ready containers of the old image are
//! replaced and a leased one is left alone until it comes back.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, IMAGE, docker};

/// Build `tag` as the test image plus a label, so each version has its own image ID.
fn build_version(tag: &str, version: u32) {
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "FROM {IMAGE}\nLABEL warmpool.test.version={version}\n"
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct RemoveImage(String);
impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

fn image_of(container: &str) -> String {
    docker(&["inspect", "--format", "{{.Image}}", container])
}

#[tokio::test]
async fn a_moved_tag_drains_ready_containers_and_spares_leases() {
    let tag = format!("warmpool-test/drift-{}:latest", std::process::id());
    engine_image_ready();
    build_version(&tag, 1);
    let _cleanup = RemoveImage(tag.clone());
    let v1 = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);

    let d = Daemon::start(&[format!(
        "  drift:\n    image: {tag}\n    min_ready: 2\n    max_ready: 2\n    max_total: 6\n    lifecycle: {{ image_check_interval: 300ms }}\n"
    )])
    .await;
    d.warm_up("drift").await;
    let lease = d.acquire(json!({"pool": "drift"})).await;
    let leased = lease["container_id"].as_str().unwrap().to_string();
    assert_eq!(image_of(&leased), v1);

    build_version(&tag, 2);
    let v2 = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_ne!(v1, v2);

    let host = format!("label=warmpool.host={}", d.host_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ids: Vec<String> = docker(&["ps", "-q", "--no-trunc", "--filter", &host])
            .lines()
            .map(String::from)
            .collect();
        let others: Vec<&String> = ids.iter().filter(|c| **c != leased).collect();
        let ready = d.pool("drift").await["counts"]["ready"].as_u64().unwrap();
        if ready == 2 && others.len() == 2 && others.iter().all(|c| image_of(c) == v2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pool did not move to the new image: {others:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The lease of the old image was never touched.
    let out = d
        .exec(
            lease["lease_id"].as_str().unwrap(),
            json!({"cmd": ["true"]}),
        )
        .await;
    assert_eq!(out["exit_code"], 0);
    assert_eq!(image_of(&leased), v1);
}

fn engine_image_ready() {
    warmpool_e2e::engine_and_image();
}
