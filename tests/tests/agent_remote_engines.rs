//! The agent on engines the daemon reaches over the network (issue 22's "two engines, one of
//! them reached over TCP"): two engines of the test's own, `e1` over plain TCP and `e2` over
//! TLS, each holding the shell-less image. On each, the agent gets in with no shell, no
//! network and a read-only root, serves a lease's own env, secrets and files before the 201,
//! streams output, takes a directory as tar, keeps secrets out of the engine's logs and
//! `docker inspect`, and after a kill -9 of the daemon is found again over the same TCP
//! connection kind: the re-adopted lease still runs its commands with its own environment.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

use warmpool_e2e::{Daemon, ExtraEngines, Setup, eventually, pool_yaml};

const SCRATCH: &str = "warmpool-test/scratch:latest";
const SECRET: &str = "remote-secret-5d1e";

fn scratch_image() {
    let st = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/images/build-scratch.sh"
        ))
        .status()
        .expect("run build-scratch.sh");
    assert!(st.success(), "building {SCRATCH} failed");
}

fn id(v: &Value) -> String {
    v["lease_id"].as_str().unwrap().to_string()
}

/// The NDJSON lines of a streamed exec.
async fn streamed(d: &Daemon, lease: &str, body: Value) -> Vec<Value> {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/leases/{lease}/exec/stream", d.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn out(d: &Daemon, lease: &str, cmd: &[&str]) -> String {
    let v = d.exec(lease, json!({"cmd": cmd})).await;
    assert_eq!(v["exit_code"], 0, "{cmd:?}: {v}");
    v["stdout"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_leases_on_engines_reached_over_tcp_and_tls() {
    scratch_image();
    let engines = ExtraEngines::up(2, &[2], true);
    for e in ["e1", "e2"] {
        engines.load(e, SCRATCH);
    }
    let docker = format!(
        "  state_dir: {{STATE_DIR}}\n  commit_interval: 5ms\n{}",
        engines.docker_yaml(|name| format!("{{name: {name}}}"), None)
    );
    let pool = pool_yaml(
        "sc",
        "min_ready: 2\nmax_ready: 2\nmax_total: 4\nuser: \"65534:65534\"\nread_only: true\ncmd: [/tool, sleep]\ncap_drop: [ALL]\nnetwork: none",
    )
    .replace(warmpool_e2e::IMAGE, SCRATCH);
    let mut d = Daemon::start_setup(
        &[pool],
        Setup {
            server: &docker,
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("sc").await;

    let mut leases = Vec::new();
    for engine in ["e1", "e2"] {
        let (st, _, lease) = d
            .call(
                Method::POST,
                "/v1/leases",
                Some(json!({
                    "pool": "sc",
                    "engine": {"name": engine},

                    "env": {"WHERE": engine},
                    "secrets": {"TOKEN": SECRET},
                    "files": {"/tmp/note.txt": format!("written on {engine}")},
                })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{lease}");
        assert_eq!(lease["engine"], engine, "{lease}");
        let l = id(&lease);
        assert_eq!(
            out(&d, &l, &["/tool", "env", "WHERE"]).await,
            format!("{engine}\n")
        );
        assert_eq!(
            out(&d, &l, &["/tool", "env", "TOKEN"]).await,
            format!("{SECRET}\n")
        );
        assert_eq!(
            out(&d, &l, &["/tool", "read", "/tmp/note.txt"]).await,
            format!("written on {engine}")
        );

        // Streamed: the output chunk, then the exit code.
        let lines = streamed(
            &d,
            &l,
            json!({"cmd": ["/tool", "echo", "streamed", engine]}),
        )
        .await;
        let text: String = lines.iter().filter_map(|v| v["stdout"].as_str()).collect();
        assert_eq!(text, format!("streamed {engine}\n"), "{lines:?}");
        let last = lines.last().unwrap();
        assert_eq!(last["exit_code"], 0, "{lines:?}");

        // A directory in as tar, read back by the shell-less image's own tool.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "sub/a.txt", &b"abc"[..]).unwrap();
        let (st, body) = d
            .raw(
                Method::PUT,
                &format!("/v1/leases/{l}/archive/tmp/in"),
                b.into_inner().unwrap(),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::NO_CONTENT,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            out(&d, &l, &["/tool", "read", "/tmp/in/sub/a.txt"]).await,
            "abc"
        );

        // The secret is in neither the engine's log of the container nor its inspect.
        let cid = lease["container_id"].as_str().unwrap().to_string();
        let logs = engines.docker(engine, &["logs", &cid]);
        let inspect = engines.docker(engine, &["inspect", &cid]);
        assert!(inspect.status.success());
        for (what, o) in [("logs", &logs), ("inspect", &inspect)] {
            let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
            assert!(
                !String::from_utf8_lossy(&all).contains(SECRET),
                "the secret shows in `docker {what}` on {engine}"
            );
        }
        leases.push((engine, l));
    }

    // kill -9: the agents are found again over the network, and each lease keeps its own
    // environment.
    d.kill9();
    d.restart().await;
    // Until each engine's startup reconcile has run, its leases answer 503
    // `lease_not_restored_yet` (never 404): a client retries, as this one does.
    for (_, l) in &leases {
        eventually(Duration::from_secs(30), "the lease is restored", || async {
            let (st, _, v) = d.call(Method::GET, &format!("/v1/leases/{l}"), None).await;
            match st {
                StatusCode::OK => Some(()),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(v["error"]["code"], "lease_not_restored_yet", "{v}");
                    None
                }
                other => panic!("lease {l} after the restart: {other} {v}"),
            }
        })
        .await;
    }
    for (engine, l) in &leases {
        assert_eq!(
            out(&d, l, &["/tool", "env", "WHERE"]).await,
            format!("{engine}\n"),
            "lease {l} on {engine} after the restart"
        );
        assert_eq!(
            out(&d, l, &["/tool", "env", "TOKEN"]).await,
            format!("{SECRET}\n")
        );
    }
    for (_, l) in &leases {
        let (st, _, v) = d
            .call(Method::DELETE, &format!("/v1/leases/{l}"), None)
            .await;
        assert!(st.is_success(), "{v}");
    }
}
