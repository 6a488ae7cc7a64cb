//! # warmpool-agent
//!
//! The first process of every sandbox of an `exec: agent` pool. It runs the container's own
//! command under a supervisor (so the image keeps its behaviour), reaps orphans as init does,
//! and serves the daemon over the container's attached stdio: exec (buffered, streamed, under a
//! terminal), files and directories, the lease's own environment and secrets, and the reuse
//! scrub. See `warmpool-agent-proto` for the channel and its threat model.
//!
//! Where things are: `sys.rs` (system calls), `out.rs` (frames out, flow control), `exec.rs`
//! (commands), `supervise.rs` (one command's subreaper), `files.rs` (files and tar), `scrub.rs`
//! (baseline, scrub, readings).
//!
//! It is built static (no libc needed in the image) and never reads a file of the image's to
//! work, so it runs in a `FROM scratch` image, read-only, as any user, without capabilities or
//! network.

mod exec;
mod files;
mod out;
mod scrub;
mod supervise;
mod sys;
mod sysv;

use std::io::Read;
use std::sync::Arc;

use warmpool_agent_proto::VERSION;
use warmpool_agent_proto::frame::{Dir, HELLO_LEN, Hello, Opener, RESUME_LEN};
use warmpool_agent_proto::msg::{Ev, Req, ToAgent, decode};

use crate::out::{Credits, Out, Shared};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--supervise") {
        supervise::main();
    }
    // First, before the key is read: no process of the container may read this one's memory,
    // descriptors or environment, nor trace it.
    if let Err(e) = sys::not_dumpable() {
        eprintln!("warmpool-agent: cannot make itself undumpable: {e}");
        std::process::exit(2);
    }
    let set = sys::all_signals();
    sys::block_signals(&set);
    let mut stdin = std::io::stdin().lock();
    let mut hello = vec![0u8; HELLO_LEN];
    if stdin.read_exact(&mut hello).is_err() {
        std::process::exit(2);
    }
    let Some(Hello::Start { key, nonce }) = Hello::parse_start(&hello) else {
        eprintln!("warmpool-agent: no hello on stdin");
        std::process::exit(2);
    };
    hello.iter_mut().for_each(|b| *b = 0);
    let ctx = Arc::new(Shared {
        out: Out::new(key, nonce),
        credits: Credits::default(),
    });
    let execs = Arc::new(exec::Execs::default());
    let files = Arc::new(files::Files::default());
    let baseline = Arc::new(scrub::Baseline::default());
    let main_cmd = start_main(&ctx, std::env::args().skip(1).collect());
    {
        let main_cmd = main_cmd.clone();
        std::thread::spawn(move || signals(&set, &main_cmd));
    }
    ctx.out.send(
        0,
        Ev::Ready {
            version: VERSION,
            resumed: false,
        },
    );
    let mut opener = Opener::new(key, nonce, Dir::ToAgent, true);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match stdin.read(&mut buf) {
            // The daemon's side closed stdin for good: nothing can reach the agent any more;
            // the container's command goes on.
            Ok(0) => loop {
                std::thread::park();
            },
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => loop {
                std::thread::park();
            },
        };
        opener.feed(&buf[..n]);
        // A restarted daemon resumes with a new session: whatever its predecessor left half
        // sent is dropped.
        if let Some((at, nonce)) = find_resume(&key, opener.pending()) {
            opener.take_raw(at + RESUME_LEN);
            opener.rekey(nonce);
            ctx.out.rekey(key, nonce);
            ctx.out.send(
                0,
                Ev::Ready {
                    version: VERSION,
                    resumed: true,
                },
            );
        }
        loop {
            match opener.next_frame() {
                Ok(Some(payload)) => match decode::<ToAgent>(&payload) {
                    Ok(m) => dispatch(&ctx, &execs, &files, &baseline, m),
                    Err(_) => ctx.out.send(0, Ev::Failed("undecodable request".into())),
                },
                Ok(None) => break,
                // Bytes that are not a frame of this session (a daemon cut off mid-frame):
                // wait for the next resume, which restarts the session.
                Err(_) => {
                    let n = opener.pending().len();
                    opener.take_raw(n.saturating_sub(RESUME_LEN));
                    break;
                }
            }
        }
    }
}

/// Where a resume that verifies starts in `b`, and its nonce.
fn find_resume(key: &[u8; 32], b: &[u8]) -> Option<(usize, [u8; 16])> {
    let mut from = 0;
    while let Some(i) = b[from..].windows(4).position(|w| w == b"WPR1") {
        let at = from + i;
        if let Some(nonce) = Hello::parse_resume(key, &b[at..]) {
            return Some((at, nonce));
        }
        from = at + 1;
    }
    None
}

fn dispatch(
    ctx: &out::Ctx,
    execs: &Arc<exec::Execs>,
    files: &Arc<files::Files>,
    baseline: &Arc<scrub::Baseline>,
    m: ToAgent,
) {
    let id = m.id;
    match m.req {
        Req::Ping => ctx.out.send(id, Ev::Pong),
        Req::Exec(spec) => execs.start(ctx, id, spec),
        Req::Stdin(d) => execs.stdin(id, d),
        Req::CloseStdin => execs.close_stdin(id),
        Req::Resize(ws) => execs.resize(id, ws),
        Req::Signal(s) => execs.signal(id, s),
        Req::Kill => {
            execs.kill(id);
            files.abandon(id);
            ctx.credits.close(id);
        }
        Req::Credit(n) => ctx.credits.grant(id, n),
        Req::SetLease(env) => {
            *execs.lease.lock().unwrap_or_else(|p| p.into_inner()) = env;
            ctx.out.send(id, Ev::Done);
        }
        Req::ClearLease => {
            *execs.lease.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
            ctx.out.send(id, Ev::Done);
        }
        Req::WriteFile { path, mode, len } => files.write(ctx, id, path, mode, len),
        Req::PutTar { dir } => files.put_tar(ctx, id, dir),
        Req::Data(d) => files.data(id, d),
        Req::End => files.end(id),
        Req::ReadFile(p) => files::read(ctx, id, p),
        Req::GetTar(p) => files::get_tar(ctx, id, p),
        Req::Baseline => {
            baseline.record();
            ctx.out.send(id, Ev::Ticks(sys::uptime_ticks()));
            ctx.out.send(id, Ev::Done);
        }
        Req::Scrub { emptied } => {
            let (ctx, execs, baseline) = (ctx.clone(), execs.clone(), baseline.clone());
            std::thread::spawn(move || {
                *execs.lease.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
                let mut r = baseline.kill_the_rest(&execs.supervisors());
                for (mode, dir) in &emptied {
                    if let Err(e) = scrub::empty(*mode, dir) {
                        r = Err(match r {
                            Ok(()) => e,
                            Err(f) => format!("{f}; {e}"),
                        });
                    }
                }
                ctx.out.send(
                    id,
                    match r {
                        Ok(()) => Ev::Done,
                        Err(e) => Ev::Failed(e),
                    },
                );
            });
        }
        Req::Inspect(items) => {
            let ctx = ctx.clone();
            std::thread::spawn(move || ctx.out.send(id, Ev::Inspected(scrub::inspect(items))));
        }
    }
}

/// Bytes of the container's own command's output kept for its last word.
const TAIL: usize = 2048;

/// The container's own command, under a supervisor, with no stream of the channel's: its
/// output is read and its last [`TAIL`] bytes kept (the channel is the agent's stdout, so the
/// engine keeps no log), and sent with its end as the agent's last word. Its pid, once known.
fn start_main(ctx: &out::Ctx, argv: Vec<String>) -> Arc<std::sync::atomic::AtomicI32> {
    let pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
    if argv.is_empty() {
        return pid;
    }
    let p = pid.clone();
    let (spec_r, spec_w) = sys::pipe().expect("a pipe");
    let (status_r, status_w) = sys::pipe().expect("a pipe");
    let spec = supervise::Spec {
        argv,
        env: std::env::vars().collect(),
        workdir: None,
        tty: false,
    };
    let (out_r, out_w) = sys::pipe().expect("a pipe");
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("--supervise")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(
            out_w.try_clone().expect("a descriptor"),
        ))
        .stderr(std::process::Stdio::from(out_w));
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (sr, sw) = (spec_r.as_raw_fd(), status_w.as_raw_fd());
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || sys::fds_3_4(sr, sw));
    }
    {
        let mut sups = exec::SUPERVISORS.lock().unwrap_or_else(|p| p.into_inner());
        match cmd.spawn() {
            Ok(c) => {
                sups.insert(c.id() as i32);
            }
            Err(_) => {
                eprintln!("warmpool-agent: cannot start the container's command");
                std::process::exit(127);
            }
        }
    }
    drop((spec_r, status_w, cmd));
    let tail = Arc::new(std::sync::Mutex::new(
        std::collections::VecDeque::<u8>::new(),
    ));
    let t = tail.clone();
    std::thread::spawn(move || {
        let mut r = std::fs::File::from(out_r);
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            t.extend(&buf[..n]);
            let over = t.len().saturating_sub(TAIL);
            t.drain(..over);
        }
    });
    let ctx = ctx.clone();
    let tail_for_fail = tail.clone();
    let last_word = move |code: Option<i32>, signal: Option<i32>| {
        // Let the output that preceded the end arrive.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tail: Vec<u8> = tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        ctx.out.send(0, Ev::Gone { code, signal, tail });
    };
    let mut w = std::fs::File::from(spec_w);
    let _ = std::io::Write::write_all(&mut w, &postcard::to_stdvec(&spec).unwrap_or_default());
    drop(w);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(std::fs::File::from(status_r)).lines() {
            let Ok(l) = l else { break };
            if let Some(n) = l.strip_prefix("pid ") {
                p.store(n.parse().unwrap_or(0), std::sync::atomic::Ordering::Release);
            } else if let Some(c) = l.strip_prefix("exit code ") {
                // The container's command ended: so does the container, with its code.
                let code = c.parse().unwrap_or(1);
                last_word(Some(code), None);
                std::process::exit(code);
            } else if let Some(s) = l.strip_prefix("exit signal ") {
                let sig = s.parse().unwrap_or(9);
                last_word(None, Some(sig));
                std::process::exit(128 + sig);
            } else if let Some(why) = l.strip_prefix("fail ") {
                tail_for_fail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(format!("warmpool-agent: {why}\n").bytes());
                last_word(Some(127), None);
                std::process::exit(127);
            }
        }
    });
    pid
}

/// As init: reap every orphan; pass the signals `docker stop` and `docker kill` send on to the
/// container's command.
fn signals(set: &libc::sigset_t, main_cmd: &std::sync::atomic::AtomicI32) {
    loop {
        match sys::wait_signal(set) {
            libc::SIGCHLD => {
                while let Ok(Some((pid, _))) = sys::reap() {
                    exec::SUPERVISORS
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&pid);
                }
            }
            sig => {
                let pid = main_cmd.load(std::sync::atomic::Ordering::Acquire);
                if pid > 0 {
                    sys::kill(-pid, sig);
                } else if sig == libc::SIGTERM || sig == libc::SIGINT {
                    std::process::exit(0);
                }
            }
        }
    }
}
