//! The system calls the agent needs, each wrapped once: process attributes (not dumpable, child
//! subreaper), signals (all blocked, then waited for), pipes and terminals, and what `/proc`
//! says about processes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The result of a libc call that returns -1 on error.
fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Make this process not dumpable: its `/proc/<pid>` entries (fds, memory, environment) become
/// closed to every process without `CAP_SYS_PTRACE`, and it cannot be ptraced.
pub fn not_dumpable() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE and an integer argument touches no memory of ours.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// Become the reaper of this process's orphaned descendants (instead of PID 1).
pub fn child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER and an integer argument touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// A set of every signal.
pub fn all_signals() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the zeroed set it is given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Block every signal in this thread (threads spawned later inherit the mask; children
/// spawned through `std::process::Command` get an empty one).
pub fn block_signals(set: &libc::sigset_t) {
    // SAFETY: `set` is a valid, initialised signal set; the old mask is not asked for.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut());
    }
}

/// Wait for one of the blocked signals in `set`; its number.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    loop {
        // SAFETY: `set` is valid; siginfo may be null.
        let r = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if r > 0 {
            return r;
        }
    }
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// Reap one child that has ended, without waiting: its pid and how it ended. `Err` with
/// `ECHILD` when there are no children at all.
pub fn reap() -> io::Result<Option<(i32, Ended)>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid integer.
    let pid = check(unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) })?;
    if pid == 0 {
        return Ok(None);
    }
    let ended = if libc::WIFSIGNALED(status) {
        Ended::Signal(libc::WTERMSIG(status))
    } else {
        Ended::Code(libc::WEXITSTATUS(status))
    };
    Ok(Some((pid, ended)))
}

/// Send `sig` to `pid` (a negative pid: a process group). Errors are ignored: the process may
/// be gone.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill takes plain integers.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we then own.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A new pseudo-terminal of `rows` × `cols`: (master, slave).
pub fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt returns a new descriptor (or -1), which we then own.
    let master =
        check(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: `master` is a fresh descriptor owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt and unlockpt take the master descriptor.
    check(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    check(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most `name.len()` bytes.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    // SAFETY: open with a valid path; the descriptor is then owned here.
    let slave = check(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh descriptor owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    set_winsize(&master, rows, cols)?;
    Ok((master, slave))
}

/// Set a terminal's size.
pub fn set_winsize(fd: &OwnedFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// The foreground process group of the terminal whose master is `fd` (0 when unknown).
pub fn foreground_group(fd: &OwnedFd) -> i32 {
    // SAFETY: tcgetpgrp on a descriptor.
    unsafe { libc::tcgetpgrp(fd.as_raw_fd()) }.max(0)
}

/// In a child about to exec: start a new session, and with `tty`, make stdin its controlling
/// terminal; and unblock every signal (the agent and its supervisors block them all to wait
/// for them, and a program starts with the mask its parent had). Only async-signal-safe calls.
pub fn new_session(tty: bool) -> io::Result<()> {
    // SAFETY: sigemptyset fills a zeroed set; pthread_sigmask, setsid and ioctl are
    // async-signal-safe and take no memory of ours but these values.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a child about to exec: make `fd` its descriptor `to` (cleared of close-on-exec).
pub fn dup_to(fd: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on descriptors; async-signal-safe.
    check(unsafe { libc::dup2(fd, to) }).map(drop)
}

/// In a child about to exec: make `a` its descriptor 3 and `b` its descriptor 4, whichever
/// numbers they have now (either may already be 3 or 4). Only async-signal-safe calls.
pub fn fds_3_4(a: RawFd, b: RawFd) -> io::Result<()> {
    // Copies above both targets first, so that neither dup2 clobbers the other's source, and
    // dup2 always changes the number (which is what clears close-on-exec).
    // SAFETY: fcntl F_DUPFD on open descriptors; async-signal-safe.
    let (a, b) = unsafe {
        (
            check(libc::fcntl(a, libc::F_DUPFD_CLOEXEC, 10))?,
            check(libc::fcntl(b, libc::F_DUPFD_CLOEXEC, 10))?,
        )
    };
    dup_to(a, 3)?;
    dup_to(b, 4)
}

/// Close `fd` when this process execs another program.
pub fn cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on a descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Put `/dev/null` on descriptors 0, 1 and 2 (a supervisor lets go of its exec's streams, so
/// they end when the exec's own processes close them).
pub fn null_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for to in 0..3 {
        dup_to(null.as_raw_fd(), to)?;
    }
    Ok(())
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
    /// When it started, in clock ticks since boot.
    pub start: u64,
    /// Dead, waiting for its parent to reap it.
    pub zombie: bool,
}

fn stat_of(pid: i32) -> Option<Proc> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold anything, spaces and parentheses included: read after the
    // last `)`.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (0), ppid (1), …, starttime (19).
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
        zombie: f.first() == Some(&"Z"),
    })
}

/// Every process this process can see.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat_of)
        .collect()
}

/// Every live process of session `sid` (not the zombies, which wait for their parent).
pub fn session_members(sid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        // SAFETY: getsid takes a pid.
        .filter(|p| !p.zombie && unsafe { libc::getsid(p.pid) } == sid)
        .map(|p| p.pid)
        .collect()
}

/// The process groups of the session `sid` leads, other than its own: the jobs a shell in it
/// started.
pub fn jobs_of_session(sid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = processes()
        .into_iter()
        .filter_map(|p| {
            // SAFETY: getsid and getpgid take a pid.
            let (s, g) = unsafe { (libc::getsid(p.pid), libc::getpgid(p.pid)) };
            (s == sid && g > 0 && g != sid).then_some(g)
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The children of `pid` now.
pub fn children_of(pid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == pid)
        .map(|p| p.pid)
        .collect()
}

/// The container's clock in ticks since boot (`/proc/uptime` × 100, Linux's `USER_HZ`).
pub fn uptime_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let secs: f64 = s
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    (secs * 100.0).round() as u64
}

/// Extended attributes of `path` (not following a link): names and a digest of their values,
/// or empty when it has none.
pub fn xattrs(path: &std::path::Path) -> String {
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return String::new();
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: llistxattr writes at most `names.len()` bytes into the buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return String::new();
    }
    let mut h = sha2::Sha256::new();
    let mut list = Vec::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
    {
        let Ok(cn) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut val = vec![0u8; 65536];
        // SAFETY: lgetxattr writes at most `val.len()` bytes into the buffer.
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        h.update(name);
        h.update([0]);
        if m > 0 {
            h.update(&val[..m as usize]);
        }
        h.update([0]);
        list.push(String::from_utf8_lossy(name).into_owned());
    }
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("xattrs={}:{hex}", list.join(","))
}
