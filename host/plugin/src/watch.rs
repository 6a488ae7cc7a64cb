//! Hot reload. A notify watcher on the *directories* that hold plugin files (an editor's
//! write-to-temp-then-rename replaces the file's inode, and a watch on the file would die with
//! it) only forwards paths; one task debounces them, then reloads the slots whose file changed.
//! Content hashing in [`PluginSlot::reload`](crate::slot::PluginSlot::reload) makes a touch a
//! no-op, and a failed reload keeps the old plugin serving.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::slot::PluginSlot;

/// Quiet time after the last event before reloading: long enough to coalesce an editor's
/// write, rename and chmod, short enough that a swap lands within ~100 ms.
pub const DEBOUNCE: Duration = Duration::from_millis(60);

/// The slots the watcher serves; a config reload changes them and notifies `rewatch`.
pub type Slots = Arc<Mutex<Vec<Arc<PluginSlot>>>>;

fn dirs_of(slots: &Slots) -> BTreeSet<PathBuf> {
    slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|s| s.path.parent().map(PathBuf::from))
        .collect()
}

/// Watch every slot's directory and reload on change, until `cancel`.
pub fn spawn(
    slots: Slots,
    rewatch: Arc<Notify>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher: RecommendedWatcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                for p in ev.paths {
                    let _ = tx.send(p);
                }
            }
            Err(e) => warn!(error = %e, "plugin watcher error"),
        })?;
    let mut dirs = dirs_of(&slots);
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    tracker.spawn(async move {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = rewatch.notified() => {
                    // The slot set changed: watch the new directories, drop the unused ones.
                    let now = dirs_of(&slots);
                    for d in dirs.difference(&now) {
                        let _ = watcher.unwatch(d);
                    }
                    for d in now.difference(&dirs) {
                        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                            warn!(dir = %d.display(), error = %e, "cannot watch a plugin directory; its plugin will not hot-reload");
                        }
                    }
                    dirs = now;
                    continue;
                }
                p = rx.recv() => match p { Some(p) => p, None => return },
            };
            let mut changed = BTreeSet::from([first]);
            while let Ok(Some(p)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                changed.insert(p);
            }
            // A directory that was renamed or recreated loses its watch: add them all again.
            for d in &dirs {
                if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                    debug!(dir = %d.display(), error = %e, "re-adding plugin directory watch");
                }
            }
            let current = slots.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let hit: Vec<Arc<PluginSlot>> = current
                .iter()
                .filter(|s| {
                    changed.iter().any(|p| {
                        p == &s.path
                            || p.file_name() == s.path.file_name() && p.parent() == s.path.parent()
                    })
                })
                .cloned()
                .collect();
            for slot in hit {
                let _ = tokio::task::spawn_blocking(move || slot.reload()).await;
            }
        }
    });
    Ok(())
}
