//! The CLI's interactive commands against the real daemon (issue 22): `warmpool shell` driven
//! in a real terminal (tmux: keys typed, the screen read, the window resized), `warmpool exec
//! --stream` read while the command still runs, and `warmpool acquire` with env, secrets,
//! files and a working directory.
//!
//! tmux is installed by scripts/python-env.sh (scripts/test.sh runs it); without it the shell
//! test fails, it never skips.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmpool_e2e::{Daemon, binary, pool_yaml};

/// A tmux server of this test alone (its own socket, in a temporary directory); killed when
/// dropped, so a failing test leaves no terminal, no client and no socket behind.
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(session_cmd: &str, rows: u16, cols: u16) -> Tmux {
        let v = Command::new("tmux").arg("-V").output();
        assert!(
            v.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is missing ({v:?}); scripts/python-env.sh installs it (apt-get install tmux)"
        );
        let dir = tempfile::tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            session_cmd,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?}: {out:?}");
    }

    fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-J", "-t", "t"]).stdout)
            .into_owned()
    }

    /// Wait until the screen shows `want` (within 15 s); the screen.
    fn until(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self.run(&["capture-pane", "-p", "-J", "-t", "t"]);
            assert!(out.status.success(), "the terminal is gone: {out:?}");
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            if s.contains(want) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {want:?}; it shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pane_size(&self) -> String {
        let out = self.run(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_height} #{pane_width}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn cli(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .env("WARMPOOL_URL", &d.url)
        .output()
        .expect("run the CLI")
}

fn wait_for_file(p: &Path, within: Duration, what: &str, t: &Tmux) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(s) = std::fs::read_to_string(p)
            && s.ends_with('\n')
        {
            return s.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}; the terminal shows:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn the_shell_in_a_real_terminal_types_resizes_interrupts_and_exits_with_the_code() {
    let d = Daemon::start(&[pool_yaml("sh", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("sh").await;
    // The lease, with its set-up from the CLI's acquire flags.
    let local = d.dir.path().join("greeting.txt");
    std::fs::write(&local, "hello from a local file\n").unwrap();
    let out = Command::new(binary())
        .args(["acquire", "sh", "--env", "FROM_CLI=cli-env"])
        .args(["--secret", "WP_TEST_SECRET", "--workdir", "/work/wd"])
        .arg(format!("--file=/work/wd/greeting.txt=@{}", local.display()))
        .env("WARMPOOL_URL", &d.url)
        .env("WP_TEST_SECRET", "s3cret-from-env")
        .output()
        .unwrap();
    assert!(out.status.success(), "acquire: {out:?}");
    let lease: Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = lease["lease_id"].as_str().unwrap();

    let t = Tmux::start(&shell_cmd(&d, l), 30, 100);
    let first = t.pane_size();

    // The remote shell's prompt, in the lease's working directory (keys typed before it would
    // be dropped by its line editor, as on any terminal).
    t.until("/work/wd # ");
    // Keys typed reach the remote shell, which has the lease's set-up; output comes back.
    t.type_line("echo got-$FROM_CLI-$WP_TEST_SECRET-$(pwd)-$((6*7)); cat greeting.txt");
    t.until("got-cli-env-s3cret-from-env-/work/wd-42");
    t.until("hello from a local file");

    // The remote terminal has the local one's size, and follows it when it changes.
    t.type_line("echo size=$(stty size)=");
    t.until(&format!("size={first}="));
    let out = t.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    assert!(out.status.success(), "resize-window: {out:?}");
    let second = t.pane_size();
    assert_ne!(first, second, "tmux resized the window");
    t.type_line("clear; echo size=$(stty size)=");
    t.until(&format!("size={second}="));

    // Ctrl-C is a key: it interrupts the remote job (130: killed by SIGINT) and the shell
    // (and the CLI) go on.
    t.type_line("sleep 100");
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["C-c"]);
    t.type_line("echo after-$?-done");
    t.until("after-130-done");

    // The remote exit code is the CLI's.
    t.type_line("exit 3");
    let code = wait_for_file(&status(&d), Duration::from_secs(15), "the CLI's exit", &t);
    assert_eq!(code, "3", "the CLI exits with the remote shell's code");
    restored(&d, &t);
    drop(t);

    // Another way out: the lease ends under the terminal. The CLI says so, fails, and the
    // local terminal is back as it was.
    std::fs::remove_file(status(&d)).unwrap();
    let t = Tmux::start(&shell_cmd(&d, l), 30, 100);
    t.until("/work/wd # ");
    let (st, _, _) = d
        .call(reqwest::Method::DELETE, &format!("/v1/leases/{l}"), None)
        .await;
    assert!(st.is_success(), "release: {st}");
    let code = wait_for_file(&status(&d), Duration::from_secs(15), "the CLI's exit", &t);
    assert_ne!(code, "0", "a terminal cut short is a failure");
    restored(&d, &t);
}

fn status(d: &Daemon) -> std::path::PathBuf {
    d.dir.path().join("cli-status")
}

/// The pane's command: the local terminal's settings (`stty -g`) before and after the CLI,
/// the CLI's exit status; the pane stays after the CLI ends (its last words stay on the screen
/// for a failure's message) until the guard ends it.
fn shell_cmd(d: &Daemon, lease: &str) -> String {
    let dir = d.dir.path().display();
    format!(
        "stty -g > {dir}/stty-before; {} shell --url {} {lease}; s=$?; stty -g > {dir}/stty-after; \
         echo $s > {}; sleep 600",
        binary().display(),
        d.url,
        status(d).display()
    )
}

/// The local terminal's settings after the CLI are those before it (raw mode undone).
fn restored(d: &Daemon, t: &Tmux) {
    let read = |f: &str| std::fs::read_to_string(d.dir.path().join(f)).unwrap();
    let (before, after) = (read("stty-before"), read("stty-after"));
    assert_eq!(
        before,
        after,
        "the local terminal is not restored; the terminal shows:\n{}",
        t.screen()
    );
}

#[tokio::test]
async fn exec_stream_writes_output_as_it_comes_and_exits_with_the_code() {
    let d = Daemon::start(&[pool_yaml("st", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("st").await;
    let lease = d.acquire(json!({"pool": "st"})).await;
    let l = lease["lease_id"].as_str().unwrap().to_string();

    // The first line is on the CLI's stdout while the command still sleeps.
    let mut child = Command::new(binary())
        .args(["exec", "--stream", &l, "--", "sh", "-c"])
        .arg("echo first; echo oops >&2; sleep 3; echo second; exit 7")
        .env("WARMPOOL_URL", &d.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).unwrap();
    let early = started.elapsed();
    assert_eq!(&first, b"first\n");
    assert!(
        early < Duration::from_secs(2),
        "the first line came only after {early:?}, not as it was written"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the CLI is still running"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(rest, "second\n");
    assert_eq!(stderr, "oops\n");
    assert_eq!(st.code(), Some(7), "the command's exit code");

    // Killed by a signal: 128 + its number, as a shell says.
    let out = cli(
        &d,
        &["exec", "--stream", &l, "--", "sh", "-c", "kill -9 $$"],
    );
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    // Timed out: 124, as timeout(1).
    let out = cli(
        &d,
        &[
            "exec",
            "--stream",
            "--timeout-ms",
            "300",
            &l,
            "--",
            "sleep",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    // A lease that does not exist: an error, not a code of a command.
    let out = cli(&d, &["exec", "--stream", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown_lease"),
        "{out:?}"
    );
    let out = cli(&d, &["release", &l]);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn acquire_flags_set_up_the_lease() {
    let d = Daemon::start(&[pool_yaml("ac", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("ac").await;
    let script = d.dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho script-ran\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let secret_file = d.dir.path().join("secret");
    std::fs::write(&secret_file, "from-a-file").unwrap();
    let out = cli(
        &d,
        &[
            "acquire",
            "ac",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--secret",
            "LITERAL=lit",
            "--secret",
            &format!("FROMFILE=@{}", secret_file.display()),
            "--file",
            &format!("/work/bin/run.sh=@{}", script.display()),
            "--file",
            "/work/note.txt=plain text",
            "--workdir",
            "/work/bin",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains("from-a-file") && !printed.contains("lit\""),
        "no secret in the answer: {printed}"
    );
    let lease: Value = serde_json::from_str(&printed).unwrap();
    let l = lease["lease_id"].as_str().unwrap();
    let v = d
        .exec(
            l,
            json!({"cmd": ["sh", "-c", "echo $A $B $LITERAL $FROMFILE; pwd; ./run.sh; stat -c %a run.sh; cat /work/note.txt"]}),
        )
        .await;
    assert_eq!(
        v["stdout"], "1 x=y lit from-a-file\n/work/bin\nscript-ran\n750\nplain text",
        "{v}"
    );
    // The shell with input piped in: the end of the input is the terminal's end-of-file.
    let mut child = Command::new(binary())
        .args(["shell", l])
        .env("WARMPOOL_URL", &d.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo in-$((6*7)); pwd\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.contains("in-42") && text.contains("/work/bin"),
        "{out:?}"
    );
    // A secret named from the environment that is not there: refused before any request.
    let out = cli(&d, &["acquire", "ac", "--secret", "WP_SURELY_UNSET_VAR"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WP_SURELY_UNSET_VAR"),
        "{out:?}"
    );
    let out = cli(&d, &["release", l]);
    assert!(out.status.success(), "{out:?}");
}
