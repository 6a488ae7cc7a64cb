//! Hot reload. A notify watcher on the *directories* that hold plugin files (an editor's
//! write-to-temp-then-rename replaces the file's inode, and a watch on the file would die with
//! it) only forwards paths; one task debounces them, then reloads the slots whose file changed.
//! Content hashing in [`PluginSlot::reload`](crate::slot::PluginSlot::reload) makes a touch a
//! no-op, and a failed reload keeps the old plugin serving.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::slot::PluginSlot;

/// Quiet time after the last event before reloading: long enough to coalesce an editor's
/// write, rename and chmod, short enough that a swap lands within ~100 ms.
pub const DEBOUNCE: Duration = Duration::from_millis(60);

/// Watch every slot's directory and reload on change, until `cancel`.
pub fn spawn(
    slots: Vec<Arc<PluginSlot>>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> notify::Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
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
    let dirs: BTreeSet<PathBuf> = slots
        .iter()
        .filter_map(|s| s.path.parent().map(PathBuf::from))
        .collect();
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    tracker.spawn(async move {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
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
            let hit: Vec<Arc<PluginSlot>> = slots
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
