//! What reuse compares: a container's baseline when it first became ready (its processes, the
//! filesystem changes the engine reports, and every writable place outside the image's layer),
//! and what a client left behind that a scrub did not remove.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// How a path differs from the image, as the engine's `docker diff` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The path was changed (`C`).
    Modified,
    /// The path was added (`A`).
    Added,
    /// The path was deleted (`D`).
    Deleted,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Modified => "C",
            ChangeKind::Added => "A",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One filesystem change against the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsChange {
    /// How the path differs from the image.
    pub kind: ChangeKind,
    /// Absolute path inside the container.
    pub path: String,
}

/// What a container looked like when it first became ready, before any client touched it. A
/// reuse compares the container with it: whatever differs was left by a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The processes running then, as the engine lists them (so no program inside the container
    /// can forge the list).
    pub processes: Vec<String>,
    /// Filesystem changes against the image then: what setup wrote.
    pub changes: Vec<FsChange>,
    /// The container's clock then, in ticks since boot: a process started later is a client's.
    pub started_before: u64,
    /// Every writable place outside the image's layer (tmpfs mounts, `/dev` included, the
    /// engine's bind mounts, volumes, the mount table itself, SysV IPC), by name, and what each
    /// held then. The backend finds them; a place it cannot read destroys the container.
    pub places: BTreeMap<String, Place>,
    /// The mode and owner of the image's directories, for a directory the engine's diff later
    /// reports changed: its children's own entries say what was added or removed in it, and
    /// this says whether the directory itself was changed. Shared by every container of one
    /// image and spec.
    pub dirs: Arc<BTreeMap<String, String>>,
}

/// One writable place outside the image's layer, as a baseline recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// How the backend reads it, and what a scrub does to it.
    pub kind: PlaceKind,
    /// What it held, normalised (one line per entry, or a digest of what the engine read), in
    /// a form only the backend that recorded it interprets.
    pub state: Vec<String>,
}

/// How a [`Place`] is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlaceKind {
    /// Empty when the container was fresh (`/dev/shm`, `/dev/mqueue`, a tmpfs of the spec):
    /// the scrub empties it, and it must be empty again.
    Emptied,
    /// Held something when fresh (`/dev`, `/sys/fs/cgroup`): it must list exactly as it did.
    Listed,
    /// Read through the engine, not through a program inside the container (a bind mount such
    /// as `/etc/hosts`, a volume): it must read back exactly as it did.
    Read,
    /// Kernel state that is not a file: the mount table, SysV IPC objects. It must be as it
    /// was.
    Kernel,
}

/// Something a client left behind that a scrub did not remove.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Residue {
    /// A process that was not running when the container first became ready.
    Process(String),
    /// A file or directory added, removed or changed since the baseline.
    Path(FsChange),
    /// A writable place outside the layer that differs from its baseline.
    Place {
        /// The place: a mount point such as `/dev/shm` or `/etc/hosts`, or `mount table`.
        path: String,
        /// What differs, e.g. the entries left in it.
        what: String,
    },
}

impl fmt::Display for Residue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Residue::Process(p) => write!(f, "process {p}"),
            Residue::Path(c) => write!(f, "{} {}", c.kind, c.path),
            Residue::Place { path, what } => write!(f, "{path}: {what}"),
        }
    }
}
