//! Reading what a container's writable places hold, from the text the scrub's scripts print:
//! the mount table (`/proc/self/mountinfo`), listings (`ls -lnd` and `ls -lnAR`, normalised so
//! that times, which every write to `/dev/null` moves, do not count), and SysV IPC objects.
//! Plain functions on text, so every rule here is unit-tested without an engine.

use std::collections::{BTreeMap, BTreeSet};

use warmpool_core::PlaceKind;

/// The name under which the mount table is kept in a baseline's places.
pub const MOUNT_TABLE: &str = "mount table";
/// The name under which SysV IPC objects are kept in a baseline's places.
pub const SYSV_IPC: &str = "SysV IPC";
/// The name under which the root filesystem's extended attributes are kept (through the
/// agent only).
pub const XATTRS: &str = "extended attributes";

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted in the container.
    pub point: String,
    /// The part of its source filesystem it shows (`/` for a whole tmpfs).
    pub root: String,
    /// The filesystem type (`tmpfs`, `ext4`, …).
    pub fstype: String,
    /// Mounted read-write.
    pub rw: bool,
}

impl Mount {
    /// How a reuse covers what a client may write here; `None`: nothing persists beyond the
    /// processes that wrote it, or nothing can be written.
    pub fn cover(&self) -> Result<Option<Cover>, String> {
        if self.point == "/" {
            return Ok(Some(Cover::Layer));
        }
        if !self.rw {
            return Ok(None);
        }
        Ok(match self.fstype.as_str() {
            // Per-process views, and pseudo-terminals that vanish with the processes holding
            // them (every client process is killed before anything is checked).
            "proc" | "devpts" => None,
            "tmpfs" | "ramfs" | "devtmpfs" | "mqueue" | "cgroup" | "cgroup2" => Some(Cover::Listed),
            "sysfs" | "securityfs" | "debugfs" | "tracefs" | "bpf" | "binfmt_misc" => {
                return Err(format!(
                    "{} is a writable {} mount, which a reuse cannot return to its state",
                    self.point, self.fstype
                ));
            }
            // A bind mount or a volume on a disk filesystem: read whole through the engine.
            _ => Some(Cover::Read),
        })
    }

    /// The line kept in the baseline's mount table: what a client would have to change to
    /// mount something new (it cannot without `CAP_SYS_ADMIN`, which reuse refuses).
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {}",
            self.point,
            self.fstype,
            if self.rw { "rw" } else { "ro" },
            self.root
        )
    }
}

/// How a mount is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// The image's layer: the engine's diff.
    Layer,
    /// Listed from inside the container (a tmpfs, `/dev`, the mqueue filesystem).
    Listed,
    /// Read through the engine's archive endpoint (a bind mount, a volume).
    Read,
}

/// Undo the kernel's octal escapes in a mountinfo field (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo`. A line that does not parse is an error: a mount the scrub
/// cannot see is a mount it cannot cover.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut v = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (head, tail) = line
            .split_once(" - ")
            .ok_or_else(|| format!("unreadable mountinfo line {line:?}"))?;
        let f: Vec<&str> = head.split(' ').collect();
        let t: Vec<&str> = tail.split(' ').collect();
        if f.len() < 6 || t.is_empty() {
            return Err(format!("unreadable mountinfo line {line:?}"));
        }
        v.push(Mount {
            root: unescape(f[3]),
            point: unescape(f[4]),
            rw: f[5].split(',').any(|o| o == "rw"),
            fstype: t[0].to_string(),
        });
    }
    if v.iter().all(|m| m.point != "/") {
        return Err("the mount table has no root".into());
    }
    Ok(v)
}

/// One entry of an `ls -ln` listing, without its time (which reads and writes move).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    mode: String,
    uid: String,
    gid: String,
    /// Size, or `major, minor` for a device; none for a directory (whose size depends on the
    /// filesystem's history, not on what it holds).
    size: String,
    name: String,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.mode.starts_with('d')
    }
    /// `MODE UID GID [SIZE]<TAB>PATH`: the mode first, so a name (which may hold anything but
    /// `/` and NUL) can never be read as one.
    fn normal(&self, path: &str) -> String {
        let meta = format!("{} {} {} {}", self.mode, self.uid, self.gid, self.size);
        format!("{}\t{path}", meta.trim_end())
    }
}

/// Parse one `ls -ln` entry line (`LC_ALL=C`): mode, links, uid, gid, size (or `maj, min`),
/// three time fields, name. `None` for a line that is not an entry.
fn entry(line: &str) -> Option<Entry> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let mode = *t.first()?;
    let kinds = ['-', 'd', 'l', 'c', 'b', 'p', 's'];
    if mode.len() < 10 || !mode.starts_with(kinds) {
        return None;
    }
    let device = mode.starts_with(['c', 'b']);
    let (size, rest) = if device {
        (format!("{} {}", t.get(4)?, t.get(5)?), 6)
    } else {
        (t.get(4)?.to_string(), 5)
    };
    // Three time fields (`Dec  7 00:13`, or `Dec  7  2025`), then the name.
    let name = t.get(rest + 3..)?.join(" ");
    Some(Entry {
        mode: mode.to_string(),
        uid: t.get(2)?.to_string(),
        gid: t.get(3)?.to_string(),
        size: if mode.starts_with('d') {
            String::new()
        } else {
            size
        },
        name,
    })
}

/// One place's normalised listing from `ls -lnd PLACE` followed by `ls -lnAR PLACE`: the
/// place itself as `.`, then each entry by its path under the place. Sections of other
/// mounts inside it (`skip`) are left out: they are places of their own, or kernel ones.
pub fn normalise_listing(place: &str, text: &str, skip: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    let mut first = true;
    for line in text.lines() {
        if line.is_empty() || line.starts_with("total ") {
            continue;
        }
        if let Some(e) = entry(line) {
            if first {
                // `ls -lnd PLACE`: the place itself.
                out.push(e.normal("."));
                first = false;
                continue;
            }
            let Some(dir) = &section else {
                out.push(format!("? {line}"));
                continue;
            };
            if skipped(dir, place, skip) {
                continue;
            }
            let rel = format!("{}/{}", relative(dir, place), e.name);
            out.push(e.normal(rel.trim_start_matches("./")));
        } else if let Some(dir) = line.strip_suffix(':') {
            section = Some(dir.to_string());
        } else {
            // Not an entry and not a header: kept, so that it can only add to a difference.
            out.push(format!("? {line}"));
        }
    }
    out.sort();
    out
}

fn relative(dir: &str, place: &str) -> String {
    match dir.strip_prefix(place) {
        Some("") => ".".into(),
        Some(rest) => format!(".{rest}"),
        None => dir.to_string(),
    }
}

/// Whether `path` is `dir` or lies under it.
pub fn is_under(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{}/", dir.trim_end_matches('/')))
}

fn skipped(dir: &str, place: &str, skip: &BTreeSet<String>) -> bool {
    skip.iter()
        .any(|m| m != place && is_under(m, place) && is_under(dir, m))
}

/// What differs between a place's baseline listing and its listing now (both sorted, compared
/// as they are, so a repeated entry counts): entries new or changed (`+`) and entries gone
/// (`-`), the first few named.
pub fn listing_diff(was: &[String], now: &[String]) -> Option<String> {
    let (mut a, mut b) = (was.to_vec(), now.to_vec());
    a.sort();
    b.sort();
    if a == b {
        return None;
    }
    let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) = (a.iter().collect(), b.iter().collect());
    let mut d: Vec<String> = sb.difference(&sa).map(|s| format!("+{s}")).collect();
    d.extend(sa.difference(&sb).map(|s| format!("-{s}")));
    if d.is_empty() {
        d.push("an entry is listed more often than it was".into());
    }
    let n = d.len();
    d.truncate(4);
    Some(format!(
        "differs from its fresh state: {}{}",
        d.join(", ").replace('\t', " "),
        if n > 4 {
            format!(" and {} more", n - 4)
        } else {
            String::new()
        }
    ))
}

/// A normalised listing line: its metadata (mode first) and its path under the place.
pub fn split_line(line: &str) -> Option<(&str, &str)> {
    line.split_once('\t')
}

/// Whether a normalised listing holds nothing but the place itself.
pub fn is_empty_listing(listing: &[String]) -> bool {
    listing
        .iter()
        .all(|l| split_line(l).is_some_and(|(_, path)| path == "."))
}

/// The place's own permission bits, in octal, from its normalised listing (for the scrub to
/// put back: a client may have made its own tmpfs unreadable).
pub fn root_mode(listing: &[String]) -> Option<String> {
    let meta = listing
        .iter()
        .filter_map(|l| split_line(l))
        .find_map(|(meta, path)| (path == ".").then_some(meta))?;
    mode_octal(meta.split(' ').next()?)
}

/// The regular files a normalised listing holds, as paths under the place.
pub fn regular_files(listing: &[String]) -> Vec<&str> {
    listing
        .iter()
        .filter_map(|l| split_line(l))
        .filter(|(meta, path)| meta.starts_with('-') && *path != ".")
        .map(|(_, path)| path)
        .collect()
}

/// `drwxrwxrwt` → `1777`.
pub fn mode_octal(mode: &str) -> Option<String> {
    let b = mode.as_bytes();
    if b.len() < 10 {
        return None;
    }
    let mut v = 0u32;
    let mut special = 0u32;
    for (i, c) in b[1..10].iter().enumerate() {
        let bit = 1 << (8 - i);
        match (i, c) {
            (_, b'r' | b'w' | b'x') => v |= bit,
            (_, b'-') => {}
            (2, b's') => {
                v |= bit;
                special |= 4
            }
            (2, b'S') => special |= 4,
            (5, b's') => {
                v |= bit;
                special |= 2
            }
            (5, b'S') => special |= 2,
            (8, b't') => {
                v |= bit;
                special |= 1
            }
            (8, b'T') => special |= 1,
            _ => return None,
        }
    }
    Some(format!("{special}{v:03o}"))
}

/// The image's directories from `ls -lnd /`, then `ls -lnd DIR` and `ls -lnAR DIR` for each
/// top-level directory: path → `mode uid gid`.
pub fn dir_index(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(e) = entry(line) {
            if !e.is_dir() {
                continue;
            }
            let path = match &section {
                // A top-level line (`ls -lnd`) names its path itself.
                None => e.name.clone(),
                Some(dir) => format!("{}/{}", dir.trim_end_matches('/'), e.name),
            };
            out.insert(path, format!("{} {} {}", e.mode, e.uid, e.gid));
        } else if let Some(dir) = line.strip_suffix(':') {
            section = Some(dir.to_string());
        } else if line == "== top" {
            section = None;
        }
    }
    out
}

/// One `ls -lnd DIR` line as the directory index keeps it, with the path it names.
pub fn dir_meta(line: &str) -> Option<(String, String, bool)> {
    let e = entry(line)?;
    Some((
        e.name.clone(),
        format!("{} {} {}", e.mode, e.uid, e.gid),
        e.is_dir(),
    ))
}

/// SysV IPC objects from `/proc/sysvipc/{shm,msg,sem}` lines as the scripts print them
/// (`shm <key> <id> …`): kind, key and id, which is what identifies one.
pub fn ipc_objects(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() >= 3).then(|| format!("{} {} {}", t[0], t[1], t[2]))
        })
        .collect();
    v.sort();
    v
}

/// The kind a listed mount takes in a baseline: a directory that was empty is emptied by the
/// scrub; one that held something, or a mount of a single file (`/proc/keys` is `/dev/null`
/// bound there), must list as it did.
pub fn listed_kind(listing: &[String]) -> PlaceKind {
    let dir = listing
        .iter()
        .filter_map(|l| split_line(l))
        .any(|(meta, path)| path == "." && meta.starts_with('d'));
    if dir && is_empty_listing(listing) {
        PlaceKind::Emptied
    } else {
        PlaceKind::Listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str =
        "72 48 0:40 / / rw,nodev,noatime master:2 - fuse.fuse-overlayfs fuse-overlayfs rw
73 72 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
74 72 0:43 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
75 74 0:44 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
76 72 0:45 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
77 76 0:46 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
87 74 0:41 / /dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw
88 74 0:47 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
89 72 254:0 /var/lib/docker/volumes/x/_data /my\\040data rw,relatime master:1 - ext4 /dev/vda rw
91 72 254:0 /var/lib/docker/containers/c/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
54 73 0:43 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
";

    #[test]
    fn every_writable_mount_is_covered_or_refused() {
        let m = parse_mountinfo(MOUNTINFO).unwrap();
        let cover = |p: &str| m.iter().find(|x| x.point == p).unwrap().cover().unwrap();
        assert_eq!(cover("/"), Some(Cover::Layer));
        assert_eq!(cover("/proc"), None);
        assert_eq!(cover("/sys"), None, "read-only");
        assert_eq!(cover("/dev"), Some(Cover::Listed));
        assert_eq!(cover("/dev/shm"), Some(Cover::Listed));
        assert_eq!(cover("/dev/mqueue"), Some(Cover::Listed));
        assert_eq!(cover("/sys/fs/cgroup"), Some(Cover::Listed));
        assert_eq!(cover("/my data"), Some(Cover::Read), "escapes undone");
        assert_eq!(cover("/etc/hosts"), Some(Cover::Read));
        let rw_sysfs = Mount {
            point: "/sys".into(),
            root: "/".into(),
            fstype: "sysfs".into(),
            rw: true,
        };
        assert!(rw_sysfs.cover().is_err());
        assert!(parse_mountinfo("garbage").is_err());
        assert!(parse_mountinfo("").is_err(), "no root");
    }

    const DEV: &str = "drwxr-xr-x    5 0        0              320 Dec  7 00:13 /dev
/dev:
total 0
lrwxrwxrwx    1 0        0               13 Dec  7 00:13 fd -> /proc/self/fd
crw-rw-rw-    1 0        0           1,   3 Dec  7 00:13 null
drwxrwxrwt    2 0        0               40 Dec  7 00:13 shm
drwxr-xr-x    2 0        0                0 Dec  7 00:13 pts

/dev/pts:
total 0
c---------    1 0        0           5,   2 Dec  7 00:13 ptmx

/dev/shm:
total 0
";

    fn skip() -> BTreeSet<String> {
        ["/dev/pts", "/dev/shm"].map(String::from).into()
    }

    #[test]
    fn a_listing_ignores_times_and_other_mounts() {
        let a = normalise_listing("/dev", DEV, &skip());
        assert_eq!(
            a,
            vec![
                "crw-rw-rw- 0 0 1, 3\tnull",
                "drwxr-xr-x 0 0\t.",
                "drwxr-xr-x 0 0\tpts",
                "drwxrwxrwt 0 0\tshm",
                "lrwxrwxrwx 0 0 13\tfd -> /proc/self/fd",
            ]
        );
        assert!(regular_files(&a).is_empty(), "a link is not a file");
        // A write to /dev/null moves its time; nothing else.
        let later = DEV.replace("1,   3 Dec  7 00:13 null", "1,   3 Dec  7 01:59 null");
        assert_eq!(normalise_listing("/dev", &later, &skip()), a);
        assert_eq!(listing_diff(&a, &a), None);
    }

    #[test]
    fn a_hidden_file_or_a_changed_mode_differs() {
        let a = normalise_listing("/dev", DEV, &skip());
        let hidden = DEV.replace(
            "drwxr-xr-x    2 0        0                0 Dec  7 00:13 pts",
            "drwxr-xr-x    2 0        0                0 Dec  7 00:13 pts\n-rw-r--r--    1 0        0                7 Dec  7 00:14 hidden",
        );
        let d = listing_diff(&a, &normalise_listing("/dev", &hidden, &skip())).unwrap();
        assert!(d.contains("+-rw-r--r-- 0 0 7 hidden"), "{d}");
        let chmod = DEV.replace("drwxrwxrwt    2 0", "d-wx------    2 0");
        let d = listing_diff(&a, &normalise_listing("/dev", &chmod, &skip())).unwrap();
        assert!(d.contains("+d-wx------ 0 0 shm"), "{d}");
        let twice = [a.clone(), vec![a[0].clone()]].concat();
        assert!(
            listing_diff(&a, &twice).is_some(),
            "a repeated entry counts"
        );
        // A name that forges a section header still adds its own entry line.
        let forged = DEV.replace(
            "total 0\nlrwx",
            "total 0\n-rw-r--r--    1 0        0                7 Dec  7 00:14 \n/dev/pts:\nlrwx",
        );
        assert!(listing_diff(&a, &normalise_listing("/dev", &forged, &skip())).is_some());
    }

    #[test]
    fn an_empty_place_and_its_mode() {
        let shm = "drwxrwxrwt    2 0        0               40 Dec  7 00:13 /dev/shm\n/dev/shm:\ntotal 0\n";
        let l = normalise_listing("/dev/shm", shm, &BTreeSet::new());
        assert!(is_empty_listing(&l));
        assert_eq!(listed_kind(&l), PlaceKind::Emptied);
        assert_eq!(root_mode(&l).as_deref(), Some("1777"));
        let full = format!("{shm}-rw-r--r--    1 0        0                7 Dec  7 00:14 x\n");
        let full = normalise_listing("/dev/shm", &full, &BTreeSet::new());
        assert!(!is_empty_listing(&full));
        assert_eq!(regular_files(&full), vec!["x"]);
        let keys = "crw-rw-rw-    1 0        0           1,   3 Dec  7 00:13 /proc/keys\n";
        let keys = normalise_listing("/proc/keys", keys, &BTreeSet::new());
        assert_eq!(
            listed_kind(&keys),
            PlaceKind::Listed,
            "a file is never emptied"
        );
    }

    #[test]
    fn modes_in_octal() {
        assert_eq!(mode_octal("drwxrwxrwt").as_deref(), Some("1777"));
        assert_eq!(mode_octal("d-wx------").as_deref(), Some("0300"));
        assert_eq!(mode_octal("-rwsr-xr-x").as_deref(), Some("4755"));
        assert_eq!(mode_octal("drwxr-sr-T").as_deref(), Some("3754"));
        assert_eq!(mode_octal("drwx"), None);
        assert_eq!(mode_octal("drwxrwxrwz"), None);
    }

    #[test]
    fn the_directory_index() {
        let text = "drwxr-xr-x    1 0        0             4096 Dec  7 00:13 /
== top
drwxrwxrwt    2 0        0             4096 Dec  7 00:13 /tmp
/tmp:
total 0
== top
drwxr-xr-x    1 0        0             4096 Dec  7 00:13 /usr
/usr:
drwxr-xr-x    2 0        0             4096 Dec  7 00:13 bin
-rwxr-xr-x    1 0        0              100 Dec  7 00:13 x

/usr/bin:
";
        let idx = dir_index(text);
        assert_eq!(idx.get("/").map(String::as_str), Some("drwxr-xr-x 0 0"));
        assert_eq!(idx.get("/tmp").map(String::as_str), Some("drwxrwxrwt 0 0"));
        assert_eq!(
            idx.get("/usr/bin").map(String::as_str),
            Some("drwxr-xr-x 0 0")
        );
        assert!(!idx.contains_key("/usr/x"), "files are not indexed");
        assert_eq!(
            dir_meta("d-wx------    2 0        0                0 Dec  7 00:13 /tmp"),
            Some(("/tmp".into(), "d-wx------ 0 0".into(), true))
        );
    }

    #[test]
    fn sysv_ipc_objects() {
        let t = "shm 0 32768 600 4096 1 1 0 0 0 0 0 0 0 0 0 4096 0\nmsg 1234 0 666 0 0 0 0\n";
        assert_eq!(ipc_objects(t), vec!["msg 1234 0", "shm 0 32768"]);
    }
}
