//! Reuse, from inside: the baseline of processes, the scrub (kill everything but the baseline,
//! empty the places that were empty, forget the lease's environment) and the readings the
//! daemon's check compares (listings with modes, owners, sizes and extended attributes, file
//! checksums, the image's directories, kernel files). No program of the image takes part, so
//! a scrub needs no shell in the image.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::Digest;
use warmpool_agent_proto::msg::{Inspect, Inspected};

use crate::sys;

/// The processes of the fresh container: (pid, start time).
#[derive(Default)]
pub struct Baseline(Mutex<Option<BTreeSet<(i32, u64)>>>);

impl Baseline {
    /// Record the processes running now.
    pub fn record(&self) {
        let set = sys::processes()
            .into_iter()
            .map(|p| (p.pid, p.start))
            .collect();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(set);
    }

    /// Kill every process not in the baseline (the agent itself, PID 1, is spared), in rounds
    /// until none is left. `supervisors` are told first, so each kills its own tree.
    pub fn kill_the_rest(&self, supervisors: &[i32]) -> Result<(), String> {
        let set = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or("no baseline was recorded")?;
        for s in supervisors {
            sys::kill(*s, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let extra: Vec<i32> = sys::processes()
                .into_iter()
                .filter(|p| p.pid != 1 && !set.contains(&(p.pid, p.start)))
                .map(|p| p.pid)
                .collect();
            if extra.is_empty() {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!("processes {extra:?} outlived 10 s of killing"));
            }
            for pid in extra {
                sys::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Empty `dir`, whose own mode becomes `mode` again: every entry removed, each directory in it
/// opened to its owner first (a client may have made one unreadable).
pub fn empty(mode: u32, dir: &str) -> Result<(), String> {
    let p = Path::new(dir);
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{dir}: cannot put its mode back: {e}"))?;
    let entries = std::fs::read_dir(p).map_err(|e| format!("{dir}: {e}"))?;
    for e in entries {
        let e = e.map_err(|e| format!("{dir}: {e}"))?;
        let path = e.path();
        let t = e
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let r = if t.is_dir() {
            open_up(&path);
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        r.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if std::fs::read_dir(p)
        .map_err(|e| format!("{dir}: {e}"))?
        .next()
        .is_some()
    {
        return Err(format!("{dir} is not empty after the scrub"));
    }
    Ok(())
}

/// Give the owner full access to `dir` and every directory under it (not following links).
fn open_up(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

/// `ls`'s mode string: the type, then the nine permission bits with set-id and sticky.
fn mode_string(m: &std::fs::Metadata) -> String {
    let t = m.file_type();
    let kind = if t.is_dir() {
        'd'
    } else if t.is_symlink() {
        'l'
    } else if t.is_char_device() {
        'c'
    } else if t.is_block_device() {
        'b'
    } else if t.is_fifo() {
        'p'
    } else if t.is_socket() {
        's'
    } else {
        '-'
    };
    let mode = m.mode();
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (i, c) in ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x']
        .iter()
        .enumerate()
    {
        let bit = 1 << (8 - i);
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

/// One entry as the daemon compares it: `MODE UID GID [SIZE] [xattrs]<TAB>PATH`, the size for
/// anything but a directory (a device's `major, minor`), a link's target after its name.
fn line(path: &Path, shown: &str, m: &std::fs::Metadata) -> String {
    let mode = mode_string(m);
    let t = m.file_type();
    let size = if t.is_dir() {
        String::new()
    } else if t.is_char_device() || t.is_block_device() {
        let rdev = m.rdev();
        format!(" {}, {}", libc::major(rdev), libc::minor(rdev))
    } else {
        format!(" {}", m.len())
    };
    let x = sys::xattrs(path);
    let x = if x.is_empty() { x } else { format!(" {x}") };
    let name = if t.is_symlink() {
        let target =
            std::fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
        format!("{shown} -> {target}")
    } else {
        shown.to_string()
    };
    format!("{mode} {} {}{size}{x}\t{name}", m.uid(), m.gid())
}

/// A place and everything under it, not entering `skip`.
fn list(place: &str, skip: &[String]) -> Result<Vec<String>, String> {
    let root = Path::new(place);
    let m = std::fs::symlink_metadata(root).map_err(|e| format!("{place}: {e}"))?;
    let mut out = vec![line(root, ".", &m)];
    if m.is_dir() {
        walk(root, ".", skip, &mut out, false)?;
    }
    out.sort();
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    skip: &[String],
    out: &mut Vec<String>,
    dirs_only: bool,
) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let shown = if dirs_only {
            path.display().to_string()
        } else if rel == "." {
            name
        } else {
            format!("{rel}/{name}")
        };
        let m = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_mount = skip.iter().any(|s| Path::new(s) == path);
        if !dirs_only || m.is_dir() {
            out.push(line(&path, &shown, &m));
        }
        if m.is_dir() && !is_mount {
            if dirs_only {
                // The image's directories: one the user cannot read is left out (its
                // contents cannot have been changed by that user either).
                let _ = walk(&path, &shown, skip, out, true);
            } else {
                walk(&path, &shown, skip, out, false)?;
            }
        }
    }
    Ok(())
}

/// Every path under `dir` (and `dir` itself) that carries extended attributes, not entering
/// `skip`. A directory the agent cannot read is left out: its user cannot change what is in it.
fn xattrs_under(dir: &Path, skip: &[String], out: &mut Vec<String>) {
    let x = sys::xattrs(dir);
    if !x.is_empty() {
        out.push(format!("{}\t{x}", dir.display()));
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            if !skip.iter().any(|s| Path::new(s) == path) {
                xattrs_under(&path, skip, out);
            }
        } else {
            let x = sys::xattrs(&path);
            if !x.is_empty() {
                out.push(format!("{}\t{x}", path.display()));
            }
        }
    }
}

fn sum(path: &str) -> Result<Vec<String>, String> {
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{path}: {e}"))?;
    let d: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(vec![format!("sha256:{d} {}", m.len())])
}

/// Read what `items` ask, in order.
pub fn inspect(items: Vec<Inspect>) -> Vec<Inspected> {
    items
        .into_iter()
        .map(|i| {
            Inspected::Lines(match i {
                Inspect::List { path, skip } => list(&path, &skip),
                Inspect::Stat(path) => std::fs::symlink_metadata(&path)
                    .map(|m| vec![line(Path::new(&path), &path, &m)])
                    .map_err(|e| format!("{path}: {e}")),
                Inspect::Sum(path) => sum(&path),
                Inspect::Dirs { skip } => {
                    let root = Path::new("/");
                    std::fs::symlink_metadata(root)
                        .map_err(|e| format!("/: {e}"))
                        .map(|m| {
                            let mut out = vec![line(root, "/", &m)];
                            let _ = walk(root, "/", &skip, &mut out, true);
                            out
                        })
                }
                Inspect::Xattrs { skip } => {
                    let mut out = Vec::new();
                    xattrs_under(Path::new("/"), &skip, &mut out);
                    out.sort();
                    Ok(out)
                }
                Inspect::Read(path) => match std::fs::read_to_string(&path) {
                    Ok(s) => Ok(s.lines().map(String::from).collect()),
                    // gVisor keeps SysV IPC objects but shows no `/proc/sysvipc`: ask the
                    // kernel for them instead.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        match path.strip_prefix("/proc/sysvipc/") {
                            Some(kind) => crate::sysv::list(kind),
                            None => Err(format!("{path}: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{path}: {e}")),
                },
            })
        })
        .collect()
}
