//! The agent inside every sandbox (issue 22), end to end: exec, streaming, files and
//! directories, and a lease's own environment, secrets and files applied on the warm path, in
//! a busybox image and in a `FROM scratch` image with no shell, run as a non-root user on a
//! read-only root without capabilities or network. Secrets never show where the issue says
//! they must not.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, Setup, pool_yaml};

const SCRATCH: &str = "warmpool-test/scratch:latest";

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

/// A pool of the shell-less image, as hardened as it gets.
fn scratch_pool(name: &str) -> String {
    pool_yaml(
        name,
        "min_ready: 1\nmax_ready: 1\nmax_total: 3\nuser: \"65534:65534\"\nread_only: true\ncmd: [/tool, sleep]\ncap_drop: [ALL]\nnetwork: none",
    )
    .replace(warmpool_e2e::IMAGE, SCRATCH)
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn id(v: &Value) -> String {
    v["lease_id"].as_str().unwrap().to_string()
}

async fn stream_lines(d: &Daemon, lease: &str, body: Value) -> Vec<(Duration, Value)> {
    let t0 = Instant::now();
    let mut resp = reqwest::Client::new()
        .post(format!("{}/v1/leases/{lease}/exec/stream", d.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/x-ndjson",
        "NDJSON"
    );
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push((t0.elapsed(), serde_json::from_slice(&line).unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn a_shell_less_image_as_nobody_on_a_read_only_root_gets_exec_files_and_its_lease_setup() {
    scratch_image();
    let d = Daemon::start_setup(
        &[scratch_pool("sc")],
        Setup {
            server: "  state_dir: {STATE_DIR}\n  audit_log: {STATE_DIR}/audit.jsonl\n  commit_interval: 5ms\n",
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("sc").await;
    let (st, _, lease) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({
                "pool": "sc",
                "env": {"GREETING": "hello", "A": "1", "B": "2", "C": "3"},
                "secrets": {"API_TOKEN": "tok-7c1f-SECRET"},
                "files": {"/tmp/config.txt": "from the acquire", "/tmp/bin.dat": {"content_b64": "AAEC/w==", "mode": 384}},
                "workdir": "/tmp"
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{lease}");
    let l = id(&lease);
    let run = |cmd: Vec<&str>| {
        let cmd: Vec<String> = cmd.into_iter().map(String::from).collect();
        let d = &d;
        let l = l.clone();
        async move { d.exec(&l, json!({"cmd": cmd})).await }
    };
    assert_eq!(run(vec!["/tool", "id"]).await["stdout"], "65534 65534\n");
    assert_eq!(
        run(vec!["/tool", "env", "GREETING"]).await["stdout"],
        "hello\n"
    );
    assert_eq!(
        run(vec!["/tool", "env", "API_TOKEN"]).await["stdout"],
        "tok-7c1f-SECRET\n",
        "the secret reaches the lease's commands"
    );
    assert_eq!(
        run(vec!["/tool", "read", "config.txt"]).await["stdout"],
        "from the acquire",
        "files land before the 201, and workdir applies"
    );
    let out = run(vec!["/tool", "exit", "7"]).await;
    assert_eq!(out["exit_code"], 7, "{out}");
    // Files through the agent, as the container's own user, on a read-only root (its /tmp).
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{l}/files/tmp/up.txt"),
            b"uploaded".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{l}/files/tmp/up.txt"),
            vec![],
        )
        .await;
    assert_eq!((st, body.as_slice()), (StatusCode::OK, &b"uploaded"[..]));
    // Streaming: the first chunk arrives before the command ends.
    let lines = stream_lines(
        &d,
        &l,
        json!({"cmd": ["/tool", "cat"], "stdin": "streamed\n"}),
    )
    .await;
    assert_eq!(lines[0].1["stdout"], "streamed\n", "{lines:?}");
    assert_eq!(lines.last().unwrap().1["exit_code"], 0);
    // The secret is nowhere the engine or the daemon keeps.
    let cid = lease["container_id"].as_str().unwrap();
    let inspect = std::process::Command::new("docker")
        .args(["inspect", cid])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&inspect.stdout).contains("tok-7c1f-SECRET"),
        "docker inspect shows the secret"
    );
    let logs = std::process::Command::new("docker")
        .args(["logs", cid])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&logs.stdout).contains("tok-7c1f-SECRET"),
        "the engine's log holds the secret"
    );
    assert!(
        !d.log().contains("tok-7c1f-SECRET"),
        "the daemon's log shows the secret"
    );
    let (_, _, leases) = d.call(Method::GET, "/v1/leases", None).await;
    assert!(!leases.to_string().contains("tok-7c1f-SECRET"));
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    assert!(!metrics.to_string().contains("tok-7c1f-SECRET"));
    // The state store and the audit log (every lifecycle event), byte for byte.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for entry in walk(d.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(15).any(|w| w == b"tok-7c1f-SECRET"),
            "{} holds the secret",
            entry.display()
        );
    }
    // Nothing written to the container's filesystem holds it either.
    let changes = std::process::Command::new("docker")
        .args(["diff", cid])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&changes.stdout).lines() {
        let path = line.split_whitespace().nth(1).unwrap_or("");
        if let Ok(out) = std::process::Command::new("docker")
            .args(["cp", &format!("{cid}:{path}"), "-"])
            .output()
        {
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("tok-7c1f-SECRET"),
                "{path} holds the secret"
            );
        }
    }
}

#[tokio::test]
async fn streamed_output_arrives_as_it_is_written() {
    let d = Daemon::start(&[pool_yaml("st", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("st").await;
    let l = id(&d.acquire(json!({"pool": "st"})).await);
    let lines = stream_lines(
        &d,
        &l,
        json!({"cmd": ["sh", "-c", "echo first; sleep 2; echo second >&2; exit 3"]}),
    )
    .await;
    let first = lines
        .iter()
        .find(|(_, v)| v["stdout"] == "first\n")
        .unwrap();
    let end = lines.last().unwrap();
    assert_eq!(end.1["exit_code"], 3, "{lines:?}");
    // The end says what the buffered exec's answer says.
    assert_eq!(end.1["truncated"], false, "{lines:?}");
    assert!(
        end.1["duration_ms"].as_u64().is_some_and(|ms| ms >= 2000),
        "{lines:?}"
    );
    assert!(
        end.0 - first.0 > Duration::from_millis(1500),
        "the first line came {:?} before the end: not streamed",
        end.0 - first.0
    );
    assert!(lines.iter().any(|(_, v)| v["stderr"] == "second\n"));
    // A command starts as any program expects: no signal blocked, none ignored (the agent
    // blocks them all for itself).
    let st = d
        .exec(
            &l,
            json!({"cmd": ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]}),
        )
        .await;
    let st = st["stdout"].as_str().unwrap();
    assert!(
        st.contains("SigBlk:\t0000000000000000") && st.contains("SigIgn:\t0000000000000000"),
        "{st}"
    );
    // Bytes stay exact in base64.
    let lines = stream_lines(
        &d,
        &l,
        json!({"cmd": ["sh", "-c", "printf '\\377\\000x'"], "output": "base64"}),
    )
    .await;
    assert_eq!(lines[0].1["stdout_b64"], "/wB4", "{lines:?}");
    // A quick command's output may reach the daemon before the agent's word that it started:
    // it is kept, whichever stream comes first (it was dropped, about one time in eight).
    for i in 0..25 {
        let cmd = if i % 2 == 0 {
            json!(["echo", "quick"])
        } else {
            json!(["sh", "-c", "echo first >&2; echo quick"])
        };
        let lines = stream_lines(&d, &l, json!({"cmd": cmd, "workdir": "/tmp"})).await;
        let text = |k: &str| {
            lines
                .iter()
                .filter_map(|(_, v)| v[k].as_str())
                .collect::<String>()
        };
        assert_eq!(text("stdout"), "quick\n", "run {i}: {lines:?}");
        if i % 2 == 1 {
            assert_eq!(text("stderr"), "first\n", "run {i}: {lines:?}");
        }
        assert_eq!(
            lines.last().unwrap().1["exit_code"],
            0,
            "run {i}: {lines:?}"
        );
    }
}

#[tokio::test]
async fn directories_go_in_and_out_as_tar() {
    let d = Daemon::start(&[pool_yaml("tar", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("tar").await;
    let l = id(&d.acquire(json!({"pool": "tar"})).await);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, "sub/one.txt", &b"one\n\n"[..])
        .unwrap();
    let tarball = b.into_inner().unwrap();
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{l}/archive/work/in"),
            tarball,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let out = d
        .exec(&l, json!({"cmd": ["cat", "/work/in/sub/one.txt"]}))
        .await;
    assert_eq!(out["stdout"], "one\n\n");
    let (st, body) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{l}/archive/work/in"),
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let mut a = tar::Archive::new(body.as_slice());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    // GET names the entries under the directory's own name (as `docker cp`), where PUT
    // unpacks its entries into the directory: what a GET of /work/in gives goes back with a
    // PUT to /work (a PUT to /work/copy makes /work/copy/in/...).
    assert!(names.iter().any(|n| n == "in/sub/one.txt"), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("in/") || n == "in"),
        "{names:?}"
    );
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{l}/archive/work/copy"),
            body,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let out = d
        .exec(&l, json!({"cmd": ["cat", "/work/copy/in/sub/one.txt"]}))
        .await;
    assert_eq!(out["stdout"], "one\n\n");
}

#[tokio::test]
async fn an_engine_pool_keeps_its_old_path_and_refuses_secrets() {
    let d = Daemon::start_setup(
        &[pool_yaml("en", "min_ready: 1\nmax_ready: 1\nexec: engine")],
        Setup::default(),
    )
    .await;
    d.warm_up("en").await;
    let (st, _, body) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "en", "secrets": {"X": "y"}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let l = id(&d
        .acquire(json!({"pool": "en", "env": {"FROM_ACQUIRE": "yes"}}))
        .await);
    let out = d
        .exec(&l, json!({"cmd": ["sh", "-c", "echo $FROM_ACQUIRE"]}))
        .await;
    assert_eq!(out["stdout"], "yes\n", "env reaches engine execs too");
}
