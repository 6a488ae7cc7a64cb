//! The agent's channel survives the daemon (issue 22): after `kill -9` and a restart on the
//! same state, the daemon re-attaches to each container's agent, resumes its session under the
//! key it keeps in `state_dir`, and the lease goes on with its environment and secrets, which
//! only the agent held.

use serde_json::json;
use warmpool_e2e::{Daemon, Setup, pool_yaml};

#[tokio::test]
async fn a_lease_keeps_its_agent_env_and_secrets_across_kill_9() {
    let mut d = Daemon::start_setup(
        &[pool_yaml("r", "min_ready: 2\nmax_ready: 2")],
        Setup {
            server: "  state_dir: {STATE_DIR}\n  commit_interval: 5ms\n",
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("r").await;
    let lease = d
        .acquire(json!({"pool": "r", "env": {"E": "env-1"}, "secrets": {"S": "secret-1"}}))
        .await;
    let l = lease["lease_id"].as_str().unwrap().to_string();
    let before = d.exec(&l, json!({"cmd": ["sh", "-c", "echo $E $S"]})).await;
    assert_eq!(before["stdout"], "env-1 secret-1\n");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    d.kill9();
    d.restart().await;
    let after = d.exec(&l, json!({"cmd": ["sh", "-c", "echo $E $S"]})).await;
    assert_eq!(
        after["stdout"], "env-1 secret-1\n",
        "the restarted daemon resumed the agent's session: {after}"
    );
    // A ready container the restart re-adopted serves through its agent too.
    let next = d.acquire(json!({"pool": "r"})).await;
    let n = next["lease_id"].as_str().unwrap();
    let out = d.exec(n, json!({"cmd": ["echo", "again"]})).await;
    assert_eq!(out["stdout"], "again\n");
}
