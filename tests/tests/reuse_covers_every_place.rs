//! Reproductions of issue 21, part 1: reuse leaked through places the scrub did not see, and
//! through operations that reached the engine after the scrub had looked. Each test failed on
//! the daemon before the fix; each now shows that what the first client left never reaches the
//! second, whether the container is scrubbed and reused or destroyed.
//!
//! The pool is the README's: reuse on, the reset cleaning `/work` and `/tmp`, the image's default
//! user (root in the container, with `cap_drop: ALL`). Each test runs on both ways the daemon
//! reaches inside a container: through its agent, and through the engine's exec of the image's
//! shell (`exec: engine`).

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, DelayProxy, Setup, pool_yaml};

const POOL: &str = r#"min_ready: 1
max_ready: 1
max_total: 1
workdir: /work
exhaustion: { strategy: wait, wait_timeout: 30s }
reuse: { enabled: true, max_uses: 5, reset: ["rm -rf /work/* /work/.[!.]* /tmp/* /tmp/.[!.]*"], verify: ["test -z \"$(ls -A /work)\" && test -z \"$(ls -A /tmp)\""] }"#;

/// The two ways in.
const MODES: [&str; 2] = ["agent", "engine"];

async fn daemon_in(name: &str, mode: &str) -> Daemon {
    let d = Daemon::start(&[pool_yaml(name, &format!("{POOL}\nexec: {mode}"))]).await;
    d.warm_up(name).await;
    d
}

async fn sh(d: &Daemon, lease: &str, script: &str) -> Value {
    d.exec(lease, json!({"cmd": ["sh", "-c", script]})).await
}

async fn release_for_reuse(d: &Daemon, lease: &str) -> Value {
    let (st, _, outcome) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{lease}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{outcome}");
    outcome
}

fn id(v: &Value) -> String {
    v["lease_id"].as_str().unwrap().to_string()
}

/// Session one runs `script`, releases for reuse; the outcome. Then session two: whether it got
/// the same container, and what `probe` printed there.
async fn two_sessions(d: &Daemon, pool: &str, script: &str, probe: &str) -> (Value, bool, String) {
    let one = d.acquire(json!({"pool": pool})).await;
    let out = sh(d, &id(&one), script).await;
    assert_eq!(out["exit_code"], 0, "session one's script: {out}");
    let outcome = release_for_reuse(d, &id(&one)).await;
    let two = d.acquire(json!({"pool": pool})).await;
    let same = two["container_id"] == one["container_id"];
    let seen = sh(d, &id(&two), probe).await;
    (
        outcome,
        same,
        format!(
            "{}{}",
            seen["stdout"].as_str().unwrap(),
            seen["stderr"].as_str().unwrap()
        ),
    )
}

fn reason(outcome: &Value) -> &str {
    outcome["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_tmpfs_its_client_made_unreadable_is_reopened_and_emptied() {
    for mode in MODES {
        a_tmpfs_its_client_made_unreadable_is_reopened_and_emptied_in(mode).await;
    }
}

async fn a_tmpfs_its_client_made_unreadable_is_reopened_and_emptied_in(mode: &str) {
    let d = daemon_in("hide", mode).await;
    let (outcome, same, seen) = two_sessions(
        &d,
        "hide",
        "echo SECRET > /dev/shm/x; chmod 300 /dev/shm",
        "chmod 1777 /dev/shm; cat /dev/shm/x; ls -A /dev/shm",
    )
    .await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    if same {
        assert_eq!(outcome["reused"], true, "{outcome}");
    }
}

#[tokio::test]
async fn a_file_in_dev_destroys_the_container() {
    for mode in MODES {
        a_file_in_dev_destroys_the_container_in(mode).await;
    }
}

async fn a_file_in_dev_destroys_the_container_in(mode: &str) {
    let d = daemon_in("devf", mode).await;
    let (outcome, same, seen) =
        two_sessions(&d, "devf", "echo SECRET > /dev/hidden", "cat /dev/hidden").await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
    assert!(!same);
    assert!(reason(&outcome).contains("/dev"), "{outcome}");
}

#[tokio::test]
async fn a_directory_in_dev_that_cannot_be_listed_destroys_the_container() {
    for mode in MODES {
        a_directory_in_dev_that_cannot_be_listed_destroys_the_container_in(mode).await;
    }
}

async fn a_directory_in_dev_that_cannot_be_listed_destroys_the_container_in(mode: &str) {
    let d = daemon_in("devd", mode).await;
    let (outcome, _, seen) = two_sessions(
        &d,
        "devd",
        "mkdir /dev/d && echo SECRET > /dev/d/f && chmod 000 /dev/d",
        "chmod 700 /dev/d; cat /dev/d/f",
    )
    .await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
}

#[tokio::test]
async fn the_cgroup_tmpfs_is_covered() {
    for mode in MODES {
        the_cgroup_tmpfs_is_covered_in(mode).await;
    }
}

async fn the_cgroup_tmpfs_is_covered_in(mode: &str) {
    let d = daemon_in("cg", mode).await;
    let (outcome, _, seen) = two_sessions(
        &d,
        "cg",
        "chmod 755 /sys/fs/cgroup && echo SECRET > /sys/fs/cgroup/x && chmod 555 /sys/fs/cgroup",
        "cat /sys/fs/cgroup/x",
    )
    .await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
    assert!(reason(&outcome).contains("/sys/fs/cgroup"), "{outcome}");
}

#[tokio::test]
async fn the_engines_bind_mounts_are_read_through_the_engine() {
    for mode in MODES {
        the_engines_bind_mounts_are_read_through_the_engine_in(mode).await;
    }
}

async fn the_engines_bind_mounts_are_read_through_the_engine_in(mode: &str) {
    let d = daemon_in("hosts", mode).await;
    let (outcome, _, seen) = two_sessions(
        &d,
        "hosts",
        "echo '10.0.0.1 SECRET' >> /etc/hosts",
        "cat /etc/hosts",
    )
    .await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
    assert!(reason(&outcome).contains("/etc/hosts"), "{outcome}");
}

#[tokio::test]
async fn a_changed_mode_on_an_image_directory_destroys_the_container() {
    for mode in MODES {
        a_changed_mode_on_an_image_directory_destroys_the_container_in(mode).await;
    }
}

async fn a_changed_mode_on_an_image_directory_destroys_the_container_in(mode: &str) {
    let d = daemon_in("mode", mode).await;
    // Control: files added to and removed from an image directory (its entry in the engine's
    // diff stays `C /tmp`) are no reason to destroy it.
    let (outcome, same, _) = two_sessions(&d, "mode", "echo x > /tmp/y && rm /tmp/y", "true").await;
    assert_eq!(outcome["reused"], true, "{outcome}");
    assert!(same);
    let lease = d.call(Method::GET, "/v1/leases", None).await.2;
    let held = lease["leases"][0]["lease_id"].as_str().unwrap().to_string();
    d.call(Method::DELETE, &format!("/v1/leases/{held}"), None)
        .await;
    d.warm_up("mode").await;
    // The directory itself changed: 12 bits of its mode can carry data to the next client.
    let (outcome, same, seen) =
        two_sessions(&d, "mode", "chmod 0751 /tmp", "stat -c %a /tmp").await;
    assert!(
        !seen.contains("751"),
        "{outcome}: session two saw mode {seen}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
    assert!(!same);
    assert!(reason(&outcome).contains("/tmp"), "{outcome}");
    let held = d.call(Method::GET, "/v1/leases", None).await.2["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.call(Method::DELETE, &format!("/v1/leases/{held}"), None)
        .await;
    d.warm_up("mode").await;
    // The root directory, which the engine's diff never lists.
    let (outcome, _, seen) = two_sessions(&d, "mode", "chmod 0751 /", "stat -c %a /").await;
    assert!(
        !seen.contains("751"),
        "{mode}: {outcome}: session two saw mode {seen}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
}

/// A pool of the shell-less image with reuse, reset and verified by its one tool.
const SCRATCH_REUSE: &str = r#"min_ready: 1
max_ready: 1
max_total: 1
cmd: [/tool, sleep]
exhaustion: { strategy: wait, wait_timeout: 30s }
reuse: { enabled: true, max_uses: 5, reset: [[/tool, exit, "0"]], verify: [[/tool, exit, "0"]] }"#;

#[tokio::test]
async fn an_extended_attribute_on_the_image_destroys_the_container() {
    let st = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/images/build-scratch.sh"
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let yaml =
        pool_yaml("xa", SCRATCH_REUSE).replace(warmpool_e2e::IMAGE, "warmpool-test/scratch:latest");
    let d = Daemon::start(&[yaml]).await;
    d.warm_up("xa").await;
    // The engine's diff shows no change for an attribute set on an image directory, a file, or
    // the root: only the agent's reading of them sees it.
    for target in ["/tmp", "/tool", "/"] {
        let one = d.acquire(json!({"pool": "xa"})).await;
        let id1 = one["lease_id"].as_str().unwrap();
        let out = d
            .exec(
                id1,
                json!({"cmd": ["/tool", "xattr", target, "user.note", "SECRET"]}),
            )
            .await;
        assert_eq!(out["exit_code"], 0, "{out}");
        let outcome = release_for_reuse(&d, id1).await;
        assert_eq!(outcome["reused"], false, "{target}: {outcome}");
        assert!(
            reason(&outcome).contains("extended attributes"),
            "{target}: {outcome}"
        );
        d.warm_up("xa").await;
    }
}

/// `warmpool-test/busybox-volume`: the test image with `VOLUME /data` (seeded with a file).
fn volume_image() -> &'static str {
    static IMG: OnceLock<()> = OnceLock::new();
    const NAME: &str = "warmpool-test/busybox-volume:latest";
    IMG.get_or_init(|| {
        warmpool_e2e::engine_and_image();
        let mut child = std::process::Command::new("docker")
            .args(["build", "-q", "-t", NAME, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker build");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                format!(
                    "FROM {}\nRUN mkdir /data && echo seed > /data/seed\nVOLUME /data\n",
                    warmpool_e2e::IMAGE
                )
                .as_bytes(),
            )
            .unwrap();
        assert!(child.wait().unwrap().success(), "docker build {NAME}");
    });
    NAME
}

#[tokio::test]
async fn an_image_volume_is_read_through_the_engine() {
    for mode in MODES {
        an_image_volume_is_read_through_the_engine_in(mode).await;
    }
}

async fn an_image_volume_is_read_through_the_engine_in(mode: &str) {
    let image = volume_image();
    let yaml =
        pool_yaml("vol", &format!("{POOL}\nexec: {mode}")).replace(warmpool_e2e::IMAGE, image);
    let d = Daemon::start(&[yaml]).await;
    d.warm_up("vol").await;
    // Control: a session that leaves the volume as it was.
    let (outcome, same, seen) = two_sessions(&d, "vol", "cat /data/seed", "cat /data/seed").await;
    assert_eq!(outcome["reused"], true, "{outcome}");
    assert!(same);
    assert!(seen.contains("seed"));
    let held = d.call(Method::GET, "/v1/leases", None).await.2["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.call(Method::DELETE, &format!("/v1/leases/{held}"), None)
        .await;
    d.warm_up("vol").await;
    let (outcome, same, seen) =
        two_sessions(&d, "vol", "echo SECRET > /data/x", "cat /data/x").await;
    assert!(
        !seen.contains("SECRET"),
        "{outcome}: session two read {seen:?}"
    );
    assert_eq!(outcome["reused"], false, "{mode}: {outcome}");
    assert!(!same);
    assert!(reason(&outcome).contains("/data"), "{outcome}");
}

/// A daemon whose engine is reached through a [`DelayProxy`]. Its pool uses the engine's
/// exec and archive endpoints (`exec: engine`), whose calls the proxy can hold back one by
/// one. (Through the agent, every operation and the scrub go in order over one channel, and
/// the agent answers an exec only once its tree is dead, so a late one cannot pass the
/// scrub; the fence still waits for it.)
async fn behind_a_delay(name: &str) -> (Daemon, DelayProxy) {
    let proxy = DelayProxy::start().await;
    let server = format!("docker:\n  endpoint: {}\n", proxy.endpoint());
    let d = Daemon::start_setup(
        &[pool_yaml(name, &format!("{POOL}\nexec: engine"))],
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await;
    d.warm_up(name).await;
    (d, proxy)
}

/// While a call of session one is held on its way to the engine, session one is released for
/// reuse and session two takes the pool's one container. For the next seconds, session two
/// must never see what the held call writes.
async fn a_call_held_during_the_release(
    d: &Daemon,
    proxy: &DelayProxy,
    pool: &str,
    call: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let one_id = d.call(Method::GET, "/v1/leases", None).await.2["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = tokio::spawn(call);
    for _ in 0..100 {
        if proxy.fired() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(proxy.fired(), "the call never reached the proxy");
    let outcome = release_for_reuse(d, &one_id).await;
    let two = d.acquire(json!({"pool": pool})).await;
    for _ in 0..12 {
        let seen = sh(d, &id(&two), "cat /root/late 2>/dev/null; true").await;
        assert!(
            !seen["stdout"].as_str().unwrap().contains("SECRET"),
            "session two read session one's late write ({outcome})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = held.await;
}

#[tokio::test]
async fn an_upload_sent_during_the_release_never_reaches_the_next_client() {
    let (d, proxy) = behind_a_delay("upl").await;
    let one = d.acquire(json!({"pool": "upl"})).await;
    proxy.arm("PUT", "/archive", Duration::from_secs(3));
    let (url, lease) = (d.url.clone(), id(&one));
    let upload = async move {
        let _ = reqwest::Client::new()
            .put(format!("{url}/v1/leases/{lease}/files/root/late"))
            .body("SECRET-OF-SESSION-ONE")
            .send()
            .await;
    };
    a_call_held_during_the_release(&d, &proxy, "upl", upload).await;
}

#[tokio::test]
async fn an_exec_sent_during_the_release_never_reaches_the_next_client() {
    let (d, proxy) = behind_a_delay("exl").await;
    let one = d.acquire(json!({"pool": "exl"})).await;
    // The exec's start is what reaches the engine late.
    proxy.arm("POST", "/exec/", Duration::from_secs(3));
    let (url, lease) = (d.url.clone(), id(&one));
    let exec = async move {
        let _ = reqwest::Client::new()
            .post(format!("{url}/v1/leases/{lease}/exec"))
            .json(&json!({"cmd": ["sh", "-c", "echo SECRET-OF-SESSION-ONE > /root/late"]}))
            .send()
            .await;
    };
    a_call_held_during_the_release(&d, &proxy, "exl", exec).await;
}
