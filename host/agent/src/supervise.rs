//! One command's supervisor: the agent's own binary run as `agent --supervise`, between the
//! agent and the command. It is the command's child subreaper, so every process the command
//! starts stays its descendant whatever that process does (double fork, new session, cleared
//! environment), and it kills all of them when told (SIGTERM from the agent: the exec timed
//! out, its client went away, or its lease ended).
//!
//! It takes its command on descriptor 3 (so neither the command line nor its environment
//! shows in `/proc`), reports on descriptor 4 (`pid N`, then `exit code N` or `exit signal N`,
//! or `fail WHY`), lets go of its own copies of the command's streams (they end when the
//! command's processes close them), and stays until the last of its descendants is gone.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::sys;

/// What a supervisor runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// The command.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub workdir: Option<String>,
    /// Whether its stdin is a terminal to make its controlling one.
    pub tty: bool,
}

/// The supervisor's life; never returns.
pub fn main() -> ! {
    let _ = sys::not_dumpable();
    // gVisor refuses it (EINVAL): see `kill_tree`.
    let subreaper = sys::child_subreaper().is_ok();
    // The report descriptor must not reach the command: it could forge the report.
    let _ = sys::cloexec(3);
    let _ = sys::cloexec(4);
    let set = sys::all_signals();
    sys::block_signals(&set);
    // SAFETY: the agent hands descriptors 3 and 4 to every supervisor it starts.
    let (mut spec_in, mut status) =
        unsafe { (std::fs::File::from_raw_fd(3), std::fs::File::from_raw_fd(4)) };
    let mut raw = Vec::new();
    let spec: Option<Spec> = spec_in
        .read_to_end(&mut raw)
        .ok()
        .and_then(|_| postcard::from_bytes(&raw).ok());
    drop(spec_in);
    let Some(spec) = spec.filter(|s| !s.argv.is_empty()) else {
        let _ = writeln!(status, "fail no command");
        std::process::exit(127);
    };
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(w) = &spec.workdir {
        cmd.current_dir(w);
    }
    let tty = spec.tty;
    // SAFETY: the closure only calls async-signal-safe functions (setsid, ioctl).
    unsafe {
        cmd.pre_exec(move || sys::new_session(tty));
    }
    let main_pid = match cmd.spawn() {
        Ok(child) => child.id() as i32,
        Err(e) => {
            let _ = writeln!(status, "fail {}: {e}", spec.argv[0]);
            std::process::exit(127);
        }
    };
    let _ = writeln!(status, "pid {main_pid}");
    let _ = sys::null_stdio();
    let mut main_done = false;
    loop {
        match sys::wait_signal(&set) {
            libc::SIGCHLD => loop {
                match sys::reap() {
                    Ok(Some((pid, ended))) if pid == main_pid => {
                        let line = match ended {
                            sys::Ended::Code(c) => format!("exit code {c}"),
                            sys::Ended::Signal(s) => format!("exit signal {s}"),
                        };
                        let _ = writeln!(status, "{line}");
                        main_done = true;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    // No child left: the command and everything it started are gone.
                    Err(_) if main_done => std::process::exit(0),
                    Err(_) => break,
                }
            },
            libc::SIGTERM => {
                kill_tree(main_pid, subreaper);
                std::process::exit(0);
            }
            // Anything else goes to the command's process group.
            sig => sys::kill(-main_pid, sig),
        }
    }
}

/// Kill every descendant: each round kills this process's children (orphans of the tree
/// reparent here, this being their subreaper) and reaps them, until none is left. Where this
/// process could not be a subreaper (gVisor), orphans go to PID 1 instead: each round then
/// also kills every process of the session the command started (what a process that left it
/// with a session of its own escapes), until none is left.
fn kill_tree(main: i32, subreaper: bool) {
    let me = std::process::id() as i32;
    for _ in 0..1000 {
        let mut targets = sys::children_of(me);
        if !subreaper {
            targets.extend(sys::session_members(main));
        }
        for pid in &targets {
            sys::kill(*pid, libc::SIGKILL);
        }
        loop {
            match sys::reap() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if subreaper => return,
                Err(_) => break,
            }
        }
        if !subreaper && targets.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
