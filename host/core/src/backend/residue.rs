//! What reuse compares: a container's baseline when it first became ready, the filesystem
//! changes the engine reports, and what a client left behind that a scrub did not remove.

use std::fmt;

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
}

/// Something a client left behind that a scrub did not remove.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Residue {
    /// A process that was not running when the container first became ready.
    Process(String),
    /// A file or directory added, removed or changed since the baseline.
    Path(FsChange),
    /// A tmpfs mount that is not empty.
    Tmpfs {
        /// The mount point, e.g. `/dev/shm`.
        mount: String,
        /// Names of the entries directly under it.
        entries: Vec<String>,
    },
}

impl fmt::Display for Residue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Residue::Process(p) => write!(f, "process {p}"),
            Residue::Path(c) => write!(f, "{} {}", c.kind, c.path),
            Residue::Tmpfs { mount, entries } => write!(f, "{mount} holds {}", entries.join(", ")),
        }
    }
}
