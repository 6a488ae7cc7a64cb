//! Exec: a command under its own supervisor (see `supervise.rs`), its streams pumped into
//! frames, its stdin and terminal fed from the daemon's, and its end reported once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warmpool_agent_proto::msg::{Ev, ExecSpec, LeaseEnv, Winsize};

use crate::out::{CHUNK, Ctx};
use crate::supervise::Spec;
use crate::sys;

/// How long, after the command exited, its output may still arrive before the exit is
/// reported (a background process holding the stream open does not hold the exit back).
const DRAIN_GRACE: Duration = Duration::from_millis(100);

/// The supervisors alive now (the container's own command's among them). Held while one is
/// spawned and registered, and while escaped processes are killed, so a supervisor being born
/// is never taken for an escapee.
pub static SUPERVISORS: std::sync::LazyLock<Mutex<std::collections::BTreeSet<i32>>> =
    std::sync::LazyLock::new(Mutex::default);

/// A supervisor died without reporting its command's end (a process of the client killed
/// it): its tree's processes were reparented to the agent. Every child of the agent that is
/// not a live supervisor is such an escapee: kill them all.
pub fn kill_escapees() {
    let sups = SUPERVISORS.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..50 {
        let escaped: Vec<i32> = sys::children_of(1)
            .into_iter()
            .filter(|p| !sups.contains(p))
            .collect();
        if escaped.is_empty() {
            return;
        }
        for pid in escaped {
            sys::kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What the watcher of one exec follows: the supervisor's reports, the pumps' ends, the
/// timeout.
struct Watch {
    status: std::fs::File,
    pumps: std::sync::mpsc::Receiver<()>,
    n_pumps: usize,
    timeout: Option<Duration>,
}

/// One running exec.
struct Running {
    supervisor: i32,
    main: AtomicI32,
    input: Mutex<Option<SyncSender<Vec<u8>>>>,
    master: Option<Arc<OwnedFd>>,
    killed: AtomicBool,
    /// Output went past the limit and was dropped.
    dropped: AtomicBool,
    /// The exit was reported: later output is drained and dropped.
    reported: AtomicBool,
}

/// Every exec under way, and the lease's environment they run with.
#[derive(Default)]
pub struct Execs {
    running: Mutex<HashMap<u32, Arc<Running>>>,
    /// The lease's own environment (empty between leases).
    pub lease: Mutex<LeaseEnv>,
}

impl Execs {
    fn get(&self, id: u32) -> Option<Arc<Running>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Supervisors of every exec under way.
    pub fn supervisors(&self) -> Vec<i32> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| r.supervisor)
            .collect()
    }

    /// Start `spec` as operation `id`.
    pub fn start(self: &Arc<Self>, ctx: &Ctx, id: u32, spec: ExecSpec) {
        if let Err(e) = self.spawn(ctx, id, spec) {
            ctx.out
                .send(id, Ev::Failed(format!("cannot start the command: {e}")));
            ctx.credits.close(id);
        }
    }

    fn spawn(self: &Arc<Self>, ctx: &Ctx, id: u32, spec: ExecSpec) -> std::io::Result<()> {
        if spec.argv.is_empty() || spec.argv[0].is_empty() {
            return Err(std::io::Error::other("cmd must not be empty"));
        }
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut env: HashMap<String, String> = std::env::vars().collect();
        env.extend(lease.env.iter().cloned());
        env.extend(lease.secrets.iter().cloned());
        env.extend(spec.env.iter().cloned());
        let sup = Spec {
            argv: spec.argv.clone(),
            env: env.into_iter().collect(),
            workdir: spec.workdir.clone().or(lease.workdir.clone()),
            tty: spec.tty.is_some(),
        };
        let (spec_r, spec_w) = sys::pipe()?;
        let (status_r, status_w) = sys::pipe()?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("--supervise");
        let (master, out_r, err_r, input);
        if let Some(Winsize { rows, cols }) = spec.tty {
            let (m, slave) = sys::open_pty(rows, cols)?;
            cmd.stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave));
            let m = Arc::new(m);
            out_r = Some(std::fs::File::from(m.try_clone()?));
            err_r = None;
            input = Some(std::fs::File::from(m.try_clone()?));
            master = Some(m);
        } else {
            let (o_r, o_w) = sys::pipe()?;
            let (e_r, e_w) = sys::pipe()?;
            if spec.stdin {
                let (i_r, i_w) = sys::pipe()?;
                cmd.stdin(Stdio::from(i_r));
                input = Some(std::fs::File::from(i_w));
            } else {
                cmd.stdin(Stdio::null());
                input = None;
            }
            cmd.stdout(Stdio::from(o_w)).stderr(Stdio::from(e_w));
            out_r = Some(std::fs::File::from(o_r));
            err_r = Some(std::fs::File::from(e_r));
            master = None;
        }
        let (sr, sw) = (spec_r.as_raw_fd(), status_w.as_raw_fd());
        // SAFETY: dup2 is async-signal-safe; the descriptors stay open in the parent until
        // the spawn returns.
        unsafe {
            cmd.pre_exec(move || sys::fds_3_4(sr, sw));
        }
        let mut sups = SUPERVISORS.lock().unwrap_or_else(|p| p.into_inner());
        let child = cmd.spawn()?;
        sups.insert(child.id() as i32);
        drop(sups);
        drop((spec_r, status_w));
        drop(cmd);
        let mut spec_w = std::fs::File::from(spec_w);
        spec_w.write_all(&postcard::to_stdvec(&sup).map_err(std::io::Error::other)?)?;
        drop(spec_w);
        let (tx, rx) = sync_channel::<Vec<u8>>(64);
        let running = Arc::new(Running {
            supervisor: child.id() as i32,
            main: AtomicI32::new(0),
            input: Mutex::new(input.is_some().then_some(tx)),
            master,
            killed: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            reported: AtomicBool::new(false),
        });
        if let Some(w) = input {
            std::thread::spawn(move || feed(rx, w));
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, running.clone());
        if spec.output_limit == 0 {
            ctx.credits.open(id);
        }
        let limit = spec.output_limit;
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let mut n_pumps = 0;
        for (r, err) in [(out_r, false), (err_r, true)] {
            if let Some(r) = r {
                let (c, run, done_tx) = (ctx.clone(), running.clone(), done_tx.clone());
                n_pumps += 1;
                std::thread::spawn(move || {
                    pump(&c, id, &run, r, err, limit);
                    let _ = done_tx.send(());
                });
            }
        }
        let (this, c) = (self.clone(), ctx.clone());
        let timeout = (spec.timeout_ms > 0).then(|| Duration::from_millis(spec.timeout_ms));
        let w = Watch {
            status: std::fs::File::from(status_r),
            pumps: done,
            n_pumps,
            timeout,
        };
        std::thread::spawn(move || this.watch(&c, id, &running, w));
        Ok(())
    }

    /// Follow the supervisor's reports until the command ends, then report the exit once:
    /// after its output drained, or [`DRAIN_GRACE`] after it exited when a background process
    /// still holds a stream.
    fn watch(&self, ctx: &Ctx, id: u32, running: &Arc<Running>, w: Watch) {
        let Watch {
            status,
            pumps,
            n_pumps,
            timeout,
        } = w;
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(status).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut timed_out = false;
        let (mut code, mut signal) = (None, None);
        loop {
            let line = match deadline {
                Some(d) if !timed_out => {
                    match lines.recv_timeout(d.saturating_duration_since(Instant::now())) {
                        Ok(l) => Some(l),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            timed_out = true;
                            sys::kill(running.supervisor, libc::SIGTERM);
                            continue;
                        }
                        Err(_) => None,
                    }
                }
                _ => lines.recv().ok(),
            };
            let Some(line) = line else {
                // The supervisor went without a word of the command's end: it was told to
                // kill the tree (a timeout, a kill), or something killed it.
                if code.is_none() && signal.is_none() {
                    signal = Some(libc::SIGKILL);
                }
                if !timed_out && !running.killed.load(Ordering::Acquire) {
                    SUPERVISORS
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&running.supervisor);
                    kill_escapees();
                }
                break;
            };
            if let Some(pid) = line.strip_prefix("pid ") {
                running
                    .main
                    .store(pid.parse().unwrap_or(0), Ordering::Release);
                ctx.out.send(id, Ev::Started);
            } else if let Some(c) = line.strip_prefix("exit code ") {
                code = c.parse().ok();
                break;
            } else if let Some(s) = line.strip_prefix("exit signal ") {
                signal = s.parse().ok();
                break;
            } else if let Some(why) = line.strip_prefix("fail ") {
                ctx.out
                    .send(id, Ev::Stderr(format!("{why}\n").into_bytes()));
                code = Some(127);
                break;
            }
        }
        let until = Instant::now() + DRAIN_GRACE;
        for _ in 0..n_pumps {
            if pumps
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .is_err()
            {
                break;
            }
        }
        // And the supervisor's own end (its status pipe closes), when it comes within the
        // same grace: a supervisor with nothing left to watch exits right after its command,
        // and a caller that looks at the container's processes once the exit is reported (the
        // reuse check, after the operator's reset) must not find it still on its way out.
        // One that stays (a background process of the command lives) is reported as is.
        // Its end is its reaping by the agent (the status pipe closes a moment before: an
        // exiting process still shows in the process list, as `[exe]`).
        let gone = loop {
            match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(_more) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break false,
            }
        };
        if gone {
            while SUPERVISORS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&running.supervisor)
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        running.reported.store(true, Ordering::Release);
        // The supervisor stays while the command's background processes live; it is no
        // escapee either way.
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        ctx.credits.close(id);
        let killed = running.killed.load(Ordering::Acquire);
        ctx.out.send(
            id,
            Ev::Exit {
                code: if timed_out || killed { None } else { code },
                signal: if timed_out || killed {
                    Some(libc::SIGKILL)
                } else {
                    signal
                },
                truncated: running.dropped.load(Ordering::Acquire),
                timed_out,
            },
        );
    }

    /// Bytes for operation `id`'s stdin.
    pub fn stdin(&self, id: u32, data: Vec<u8>) {
        if let Some(r) = self.get(id) {
            let tx = r.input.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(tx) = tx {
                let _ = tx.send(data);
            }
        }
    }

    /// Close operation `id`'s stdin (a terminal's input stays: a terminal has no end of input
    /// but the one its program reads, Ctrl-D).
    pub fn close_stdin(&self, id: u32) {
        if let Some(r) = self.get(id)
            && r.master.is_none()
        {
            r.input.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Resize operation `id`'s terminal.
    pub fn resize(&self, id: u32, ws: Winsize) {
        if let Some(r) = self.get(id)
            && let Some(m) = &r.master
        {
            let _ = sys::set_winsize(m, ws.rows, ws.cols);
        }
    }

    /// Send `sig` to operation `id`'s command: under a terminal to its foreground process
    /// group (a shell's running job, as Ctrl-C would), else to the command's process group.
    pub fn signal(&self, id: u32, sig: i32) {
        if let Some(r) = self.get(id) {
            let main = r.main.load(Ordering::Acquire);
            let fg = r.master.as_ref().map_or(0, |m| sys::foreground_group(m));
            if fg > 0 {
                sys::kill(-fg, sig);
            } else if r.master.is_some() && main > 0 {
                // gVisor answers `tcgetpgrp` on a terminal's master with ENOTTY and shows no
                // `tpgid` in `/proc`: the jobs of the session (its process groups other than
                // the command's own, which a shell ignores the signal in) get it instead, or
                // the command's group when it started none.
                let jobs = sys::jobs_of_session(main);
                if jobs.is_empty() {
                    sys::kill(-main, sig);
                }
                for g in jobs {
                    sys::kill(-g, sig);
                }
            } else if main > 0 {
                sys::kill(-main, sig);
            }
        }
    }

    /// Kill operation `id`'s whole tree; its `Exit` follows.
    pub fn kill(&self, id: u32) {
        if let Some(r) = self.get(id) {
            r.killed.store(true, Ordering::Release);
            sys::kill(r.supervisor, libc::SIGTERM);
        }
    }
}

/// Write what the daemon sends into the command's stdin (or terminal), until the daemon
/// closes it or the command goes.
fn feed(rx: Receiver<Vec<u8>>, mut w: std::fs::File) {
    while let Ok(data) = rx.recv() {
        if w.write_all(&data).is_err() {
            break;
        }
    }
}

/// Pump one stream into frames: all of it under the operation's credits (`limit` 0), or up to
/// `limit` bytes, reading and dropping the rest (and so once the exit was reported).
fn pump(ctx: &Ctx, id: u32, run: &Running, mut r: std::fs::File, err: bool, limit: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A terminal's master reads EIO once the last holder of its slave is gone.
            Err(_) => break,
        };
        if run.reported.load(Ordering::Acquire) {
            continue;
        }
        let chunk = if limit > 0 {
            let room = limit.saturating_sub(sent) as usize;
            if n > room {
                run.dropped.store(true, Ordering::Release);
            }
            &buf[..n.min(room)]
        } else {
            if !ctx.credits.take(id, n) {
                continue;
            }
            &buf[..n]
        };
        if chunk.is_empty() {
            continue;
        }
        sent += chunk.len() as u64;
        let data = chunk.to_vec();
        ctx.out.send(
            id,
            if err {
                Ev::Stderr(data)
            } else {
                Ev::Stdout(data)
            },
        );
    }
}
