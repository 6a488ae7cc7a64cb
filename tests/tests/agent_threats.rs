//! The agent's threat model, one attack per test (issue 22): a client that is root inside its
//! sandbox cannot write into the agent's channel, read its stdin, memory or environment, trace
//! it or its supervisors, or kill it; and an agent that forges, replays, falls silent, never
//! comes up or speaks another protocol is treated as a dead container: destroyed, never handed
//! out, and (when it fails at start) counted as a failed create that feeds the breaker.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, Setup, containers_of, eventually, pool_yaml};

fn scratch_image() {
    let st = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/images/build-scratch.sh"
        ))
        .status()
        .expect("run build-scratch.sh");
    assert!(st.success(), "building warmpool-test/scratch failed");
}

#[tokio::test]
async fn a_root_client_cannot_reach_into_the_agent() {
    scratch_image();
    // Root in the container (the image sets no user), every capability dropped: the README's
    // default hardening.
    let pool = pool_yaml("root", "min_ready: 1\nmax_ready: 1\ncmd: [/tool, sleep]")
        .replace(warmpool_e2e::IMAGE, "warmpool-test/scratch:latest");
    let d = Daemon::start(&[pool]).await;
    d.warm_up("root").await;
    let lease = d
        .acquire(json!({"pool": "root", "secrets": {"S": "v"}}))
        .await;
    let l = lease["lease_id"].as_str().unwrap();
    let out = d.exec(l, json!({"cmd": ["/tool", "attack"]})).await;
    let text = out["stdout"].as_str().unwrap();
    for attack in [
        "write-agent-stdout",
        "read-agent-stdin",
        "read-agent-memory",
        "read-agent-environ",
        "process_vm_readv-agent",
        "ptrace-agent",
        "ptrace-supervisor",
        "write-supervisor-report",
        "kill-agent",
    ] {
        assert!(
            text.contains(&format!("{attack} denied")),
            "{attack} was not denied:\n{text}"
        );
    }
    assert!(text.contains("attack held"), "{text}");
    // The agent is still there and still the only one answering: the lease works.
    let again = d.exec(l, json!({"cmd": ["/tool", "env", "S"]})).await;
    assert_eq!(again["stdout"], "v\n", "{again}");
}

fn hostile_agent() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/agent/x86_64-unknown-linux-gnu/release/hostile");
    assert!(
        p.exists(),
        "the hostile test agent is built with the daemon (host/docker/build.rs): {}",
        p.display()
    );
    p.display().to_string()
}

/// A daemon whose pool `h` runs the hostile agent in `mode`.
async fn hostile(mode: &str) -> Daemon {
    let agent = hostile_agent();
    Daemon::start_setup(
        &[pool_yaml(
            "h",
            &format!("min_ready: 1\nmax_ready: 1\nmax_total: 2\ncmd: [{mode}]"),
        )],
        Setup {
            env: &[("WARMPOOL_AGENT_BIN", agent.as_str())],
            ..Setup::default()
        },
    )
    .await
}

async fn pool(d: &Daemon) -> Value {
    d.call(Method::GET, "/v1/pools/h", None).await.2
}

/// An agent that came up and then misbehaved: its container is removed, and the log names why.
async fn destroyed_after_coming_up(mode: &str, why: &str, within: Duration) {
    let d = hostile(mode).await;
    let first = eventually(Duration::from_secs(30), "a container comes up", || async {
        let c = containers_of(&d.host_id);
        (pool(&d).await["counts"]["ready"] == 1 && !c.is_empty()).then(|| c[0].clone())
    })
    .await;
    eventually(
        within,
        "the misbehaving agent's container is removed",
        || async { (!containers_of(&d.host_id).contains(&first)).then_some(()) },
    )
    .await;
    assert!(
        d.log().contains(why),
        "the log says why ({why}):\n{}",
        d.log()
    );
}

#[tokio::test]
async fn a_forged_frame_kills_the_container() {
    destroyed_after_coming_up("forge", "forged", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_replayed_frame_kills_the_container() {
    destroyed_after_coming_up("replay", "out of order", Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_silent_agent_kills_the_container() {
    destroyed_after_coming_up("silent", "did not answer a ping", Duration::from_secs(45)).await;
}

#[tokio::test]
async fn an_agent_of_another_protocol_is_a_failed_create_that_opens_the_breaker() {
    let d = hostile("old").await;
    let p = eventually(Duration::from_secs(60), "the breaker opens", || async {
        let p = pool(&d).await;
        (p["status"] == "degraded").then_some(p)
    })
    .await;
    let err = p["creates"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("protocol"), "{p}");
    let (st, _, body) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "h"})))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn an_agent_that_never_comes_up_is_never_handed_out() {
    let d = hostile("mute").await;
    let (st, _, body) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "h", "wait_ms": 5000})),
        )
        .await;
    assert_ne!(st, StatusCode::CREATED, "a lease on a mute agent: {body}");
    let p = eventually(
        Duration::from_secs(60),
        "a failed create is counted",
        || async {
            let p = pool(&d).await;
            (p["counters"]["create_failures"].as_u64() >= Some(1)).then_some(p)
        },
    )
    .await;
    assert!(
        p["creates"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("did not come up"),
        "{p}"
    );
}
