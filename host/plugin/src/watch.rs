//! Watching plugin files. A notify watcher on the *directories* that hold plugin files (an
//! editor's write-to-temp-then-rename replaces the file's inode, and a watch on the file would
//! die with it) forwards the paths of real changes to a sink: the daemon's control inbox, whose
//! supervisor debounces them and asks the slots to reload.
//!
//! Only events that can change content pass: a create, a write, a rename, a removal, a close
//! after writing. Opening, reading and closing a file (what a reload itself does) and metadata
//! changes do not, so a reload never triggers another one, and an idle daemon reads nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tracing::warn;

/// Whether an event can mean new content.
pub fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Watches a set of directories; see the module doc.
pub struct PluginWatcher {
    watcher: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl PluginWatcher {
    /// `sink` receives the paths of each relevant event, from notify's thread: it must not block.
    pub fn new(sink: impl Fn(Vec<PathBuf>) + Send + 'static) -> notify::Result<Self> {
        let watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if relevant(&ev.kind) => sink(ev.paths),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "plugin watcher error"),
            })?;
        Ok(Self {
            watcher,
            dirs: BTreeSet::new(),
        })
    }

    /// Watch exactly `dirs`: new ones are added, unused ones dropped, and (when `renew`) the
    /// kept ones re-added, since a directory that was renamed or recreated loses its watch.
    pub fn watch(&mut self, dirs: BTreeSet<PathBuf>, renew: bool) {
        for d in self.dirs.difference(&dirs) {
            let _ = self.watcher.unwatch(d);
        }
        for d in &dirs {
            if (renew || !self.dirs.contains(d))
                && let Err(e) = self.watcher.watch(d, RecursiveMode::NonRecursive)
            {
                warn!(dir = %d.display(), error = %e, "cannot watch a plugin directory; its plugin will not hot-reload");
            }
        }
        self.dirs = dirs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    #[test]
    fn reads_and_metadata_are_not_changes() {
        assert!(relevant(&EventKind::Create(CreateKind::File)));
        assert!(relevant(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(relevant(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Read)));
        assert!(!relevant(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }
}
