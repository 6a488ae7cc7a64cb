//! Every process an exec started dies when it should (issue 22): when the exec times out and
//! when its client hangs up, including processes that double-fork, start a new session and
//! clear their environment (the per-exec subreaper catches them), while a background process
//! of an exec that ended normally lives on until its lease ends.

use std::time::Duration;

use serde_json::json;
use warmpool_e2e::{Daemon, eventually, pool_yaml};

/// A tree that does everything to get away: a new session, an empty environment, a double
/// fork, a distinctive command line.
const ESCAPE: &str = "(setsid sh -c 'env -i sleep 4242 & exit 0' &) ; sleep 300";

fn processes(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["top", container, "-eo", "pid,args"])
        .output()
        .expect("docker top");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn lease(d: &Daemon) -> (String, String) {
    let l = d.acquire(json!({"pool": "k"})).await;
    (
        l["lease_id"].as_str().unwrap().into(),
        l["container_id"].as_str().unwrap().into(),
    )
}

async fn daemon() -> Daemon {
    let d = Daemon::start(&[pool_yaml("k", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("k").await;
    d
}

#[tokio::test]
async fn a_timed_out_exec_takes_its_escaped_processes_with_it() {
    let d = daemon().await;
    let (l, c) = lease(&d).await;
    let out = d
        .exec(&l, json!({"cmd": ["sh", "-c", ESCAPE], "timeout_ms": 1500}))
        .await;
    assert_eq!(out["timed_out"], true, "{out}");
    let ps = processes(&c);
    assert!(
        !ps.contains("sleep 4242") && !ps.contains("sleep 300"),
        "{ps}"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_takes_its_escaped_processes_with_it() {
    let d = daemon().await;
    let (l, c) = lease(&d).await;
    let url = format!("{}/v1/leases/{l}/exec", d.url);
    let call = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .json(&json!({"cmd": ["sh", "-c", ESCAPE]}))
            .send()
            .await;
    });
    eventually(Duration::from_secs(10), "the tree runs", || async {
        processes(&c).contains("sleep 4242").then_some(())
    })
    .await;
    call.abort();
    eventually(Duration::from_secs(10), "the tree is gone", || async {
        let ps = processes(&c);
        (!ps.contains("sleep 4242") && !ps.contains("sleep 300")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_background_process_of_an_exec_that_ended_lives_on() {
    let d = daemon().await;
    let (l, c) = lease(&d).await;
    let out = d
        .exec(
            &l,
            json!({"cmd": ["sh", "-c", "sleep 4343 >/dev/null 2>&1 & echo started"]}),
        )
        .await;
    assert_eq!(out["stdout"], "started\n", "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        processes(&c).contains("sleep 4343"),
        "a server started in the background stays"
    );
}
