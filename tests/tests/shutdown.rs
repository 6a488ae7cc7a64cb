//! SIGTERM removes every container the daemon made (ready and leased) and exits in time;
//! startup removes what a killed daemon of the same host id left.

use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, IMAGE, containers_of, docker, pool_yaml};

#[tokio::test]
async fn sigterm_leaves_zero_managed_containers() {
    let mut d = Daemon::start(&[
        pool_yaml("a", "min_ready: 3\nmax_ready: 3\nmax_total: 6"),
        pool_yaml("b", "min_ready: 2\nmax_ready: 2\nmax_total: 4"),
    ])
    .await;
    d.warm_up("a").await;
    d.warm_up("b").await;
    d.acquire(json!({"pool": "a"})).await;
    d.acquire(json!({"pool": "b"})).await;
    assert!(containers_of(&d.host_id).len() >= 5);
    let (status, took) = d.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        d.log()
    );
    assert!(
        containers_of(&d.host_id).is_empty(),
        "left behind: {:?}",
        containers_of(&d.host_id)
    );
    eprintln!("SIGTERM to exit with 7 containers: {took:?}");
}

#[tokio::test]
async fn startup_removes_leftovers_of_its_host_id_and_only_those() {
    // A container that looks like ours from a crashed run, and one of another host id.
    let ours_host = format!("e2e-left-{}", std::process::id());
    let theirs_host = format!("e2e-other-{}", std::process::id());
    let label = |h: &str| format!("warmpool.host={h}");
    let leftover = docker(&[
        "run",
        "-d",
        "--label",
        "warmpool.managed=true",
        "--label",
        &label(&ours_host),
        IMAGE,
        "sleep",
        "600",
    ]);
    let foreign = docker(&[
        "run",
        "-d",
        "--label",
        "warmpool.managed=true",
        "--label",
        &label(&theirs_host),
        IMAGE,
        "sleep",
        "600",
    ]);
    let guard = Cleanup(vec![leftover.clone(), foreign.clone()]);

    let cfg = format!("  host_id: {ours_host}\n");
    // start_with's own host_id comes first in the YAML; ours must win, so use the env override.
    let d = Daemon::start_with(
        &[pool_yaml("s", "min_ready: 1\nmax_ready: 1")],
        "",
        &[("WARMPOOL_SERVER__HOST_ID", &ours_host)],
    )
    .await;
    let _ = cfg;
    d.warm_up("s").await;
    let ours = containers_of(&ours_host);
    assert!(
        !ours.contains(&leftover),
        "the leftover of this host id survived startup"
    );
    assert_eq!(ours.len(), 1, "only the new pool container: {ours:?}");
    assert!(
        containers_of(&theirs_host).contains(&foreign),
        "another host id's container was touched"
    );
    drop(d);
    warmpool_e2e::remove_containers_of(&ours_host);
    drop(guard);
}

struct Cleanup(Vec<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .output();
        }
    }
}
