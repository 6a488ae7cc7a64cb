//! Reuse's scrub on the Docker engine: the baseline of a fresh container, the scrub itself, and
//! the check of what a client left.
//!
//! **Every writable place is covered.** The baseline reads the container's mount table and
//! covers each writable mount ([`places::Mount::cover`]): the image's layer through the
//! engine's diff; every tmpfs (`/dev`, `/dev/shm`, `/sys/fs/cgroup`, the spec's own) and the
//! mqueue filesystem by a listing from inside; bind mounts (`/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`) and volumes by reading them whole through the engine's archive endpoint;
//! the mount table and SysV IPC objects as kernel state. A writable mount of a kind it cannot
//! return to its state makes the baseline fail, and such a container is never reused.
//!
//! **What the checks trust.** The process list comes from the engine (`GET
//! /containers/{id}/top`, read on the host), and so do the layer's changes (`GET
//! /containers/{id}/changes`), a path's type, and the bind mounts and volumes. Only once those
//! show no client process left and no program of the image changed does the daemon believe a
//! listing made inside the container by the image's own `sh` and `ls`. The scrub's actions
//! (kill, empty) also run inside, as the container's user: a client that replaced the shell can
//! only make them fail, and the checks after them still read through the engine first.
//!
//! **Fail closed.** A listing that fails, times out, is cut short or lacks its end marker, a
//! place that cannot be read, and a place that differs from its baseline all keep the
//! container from the next client: it is destroyed.

mod inside;
mod places;
mod scripts;

pub use inside::Inside;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::models::ChangeType;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder, TopOptionsBuilder,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use warmpool_core::{BackendError, Baseline, ChangeKind, FsChange, Place, PlaceKind, Residue};

use crate::op_error;
use inside::Ask;
use places::{Cover, MOUNT_TABLE, Mount, SYSV_IPC, XATTRS};

/// Go's `os.ModeDir` and `os.ModeSymlink`, as the engine reports a path's mode.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// The directory index of each image and spec (by the container's `warmpool.spec` label),
/// made from the first container of it and shared by the rest.
#[derive(Default)]
pub struct DirIndexes(Mutex<HashMap<String, Arc<BTreeMap<String, String>>>>);

fn fail(id: &str, stage: &'static str, message: String) -> BackendError {
    BackendError::Operation {
        stage,
        container: id.into(),
        message,
    }
}

/// What a fresh container looks like (its processes, layer changes, start time and every
/// writable place), for a later [`scrub`] and [`residue`] to return it to.
pub async fn baseline(
    docker: &Docker,
    id: &str,
    inside: &Inside<'_>,
    indexes: &DirIndexes,
) -> Result<Baseline, BackendError> {
    let processes = top(docker, id).await?;
    let changes = changes(docker, id).await?;
    let first = inside
        .read(
            "baseline",
            &Ask {
                first: true,
                ..Ask::default()
            },
        )
        .await?;
    let mounts = places::parse_mountinfo(&first.mounts).map_err(|e| fail(id, "baseline", e))?;
    let mut listed = Vec::new();
    let mut read = Vec::new();
    for m in &mounts {
        match m.cover().map_err(|e| fail(id, "baseline", e))? {
            Some(Cover::Listed) => listed.push(m.point.clone()),
            Some(Cover::Read) => read.push(m.point.clone()),
            Some(Cover::Layer) | None => {}
        }
    }
    let mut pl: BTreeMap<String, Place> = BTreeMap::new();
    pl.insert(MOUNT_TABLE.into(), kernel(mount_table(&mounts)));
    pl.insert(SYSV_IPC.into(), kernel(places::ipc_objects(&first.ipc)));
    for p in &read {
        pl.insert(
            p.clone(),
            Place {
                kind: PlaceKind::Read,
                state: vec![read_digest(docker, id, p).await?],
            },
        );
    }
    // Listings of the listed places, then checksums of the files any of them held.
    let points: BTreeSet<String> = mounts.iter().map(|m| m.point.clone()).collect();
    let second = inside
        .read(
            "baseline",
            &Ask {
                lists: listed.clone(),
                mounts: points.clone(),
                ..Ask::default()
            },
        )
        .await?;
    if let Some(x) = second.xattrs {
        pl.insert(XATTRS.into(), kernel(x));
    }
    let mut files = Vec::new();
    for p in &listed {
        let listing = second.lists.get(p).cloned().unwrap_or_default();
        files.extend(
            places::regular_files(&listing)
                .into_iter()
                .map(|rel| (p.clone(), format!("{}/{rel}", p.trim_end_matches('/')))),
        );
        pl.insert(
            p.clone(),
            Place {
                kind: places::listed_kind(&listing),
                state: listing,
            },
        );
    }
    if !files.is_empty() {
        let sums = inside
            .read(
                "baseline",
                &Ask {
                    sums: files.iter().map(|(_, f)| f.clone()).collect(),
                    ..Ask::default()
                },
            )
            .await?;
        for (place, f) in &files {
            let sum = sums.sums.get(f).cloned().unwrap_or_default();
            if let Some(p) = pl.get_mut(place) {
                p.state.push(format!("sum {f}\t{sum}"));
            }
        }
    }
    let dirs = index(docker, id, inside, indexes, &points).await?;
    Ok(Baseline {
        processes,
        changes,
        started_before: first.ticks,
        places: pl,
        dirs,
    })
}

fn kernel(state: Vec<String>) -> Place {
    Place {
        kind: PlaceKind::Kernel,
        state,
    }
}

fn mount_table(mounts: &[Mount]) -> Vec<String> {
    let mut v: Vec<String> = mounts.iter().map(Mount::key).collect();
    v.sort();
    v
}

/// The image's directory index for this container's image and spec: cached, or made now.
async fn index(
    docker: &Docker,
    id: &str,
    inside: &Inside<'_>,
    indexes: &DirIndexes,
    mounts: &BTreeSet<String>,
) -> Result<Arc<BTreeMap<String, String>>, BackendError> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| op_error("inspect", id, e))?;
    // Indexes made by the agent carry extended attributes, those by `ls` do not: one of each.
    let how = match inside {
        Inside::Script { .. } => "ls",
        Inside::Agent(_) => "agent",
    };
    let key = format!(
        "{how} {}",
        c.config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(crate::labels::SPEC).cloned())
            .unwrap_or_else(|| c.image.unwrap_or_default())
    );
    if let Some(found) = crate::lock(&indexes.0).get(&key) {
        return Ok(found.clone());
    }
    let made = Arc::new(inside.dir_index(mounts).await?);
    crate::lock(&indexes.0).insert(key, made.clone());
    Ok(made)
}

/// Return a released container to its baseline: kill what the lease started and empty the
/// places that were empty, before the container may be lent again. Any step that cannot
/// finish is an error.
pub async fn scrub(inside: &Inside<'_>, baseline: &Baseline) -> Result<(), BackendError> {
    let mut emptied = Vec::new();
    for (path, p) in &baseline.places {
        if p.kind == PlaceKind::Emptied {
            let mode = places::root_mode(&p.state)
                .and_then(|m| u32::from_str_radix(&m, 8).ok())
                .ok_or_else(|| {
                    BackendError::Invalid(format!("no mode recorded for {path} in the baseline"))
                })?;
            emptied.push((mode, path.clone()));
        }
    }
    inside.scrub(baseline.started_before, &emptied).await
}

/// What differs from the baseline after a scrub: empty means the container may be lent again.
/// What the engine reads comes first; a listing from inside is believed only when that found
/// nothing.
pub async fn residue(
    docker: &Docker,
    id: &str,
    inside: &Inside<'_>,
    baseline: &Baseline,
) -> Result<Vec<Residue>, BackendError> {
    let mut r = Vec::new();
    for p in top(docker, id).await? {
        if !baseline.processes.contains(&p) {
            r.push(Residue::Process(p));
        }
    }
    let was: HashSet<&FsChange> = baseline.changes.iter().collect();
    let now = changes(docker, id).await?;
    let now_set: HashSet<&FsChange> = now.iter().collect();
    // A changed directory is judged by its mode and owner below; its children have entries
    // of their own. Anything else new is residue. The root directory is always judged: the
    // engine's diff never lists it, whatever was done to it.
    let mut dirs = vec!["/".to_string()];
    for c in &now {
        if c.kind == ChangeKind::Modified && is_dir(docker, id, &c.path).await? {
            if c.path != "/" {
                dirs.push(c.path.clone());
            }
        } else if !was.contains(c) {
            r.push(Residue::Path(c.clone()));
        }
    }
    for c in baseline.changes.iter().filter(|c| !now_set.contains(c)) {
        r.push(Residue::Path(FsChange {
            kind: ChangeKind::Deleted,
            path: c.path.clone(),
        }));
    }
    for (path, p) in &baseline.places {
        if p.kind == PlaceKind::Read {
            let now = vec![read_digest(docker, id, path).await?];
            if let Some(what) = places::listing_diff(&p.state, &now) {
                r.push(Residue::Place {
                    path: path.clone(),
                    what: format!("changed (read through the engine); {what}"),
                });
            }
        }
    }
    if !r.is_empty() {
        return Ok(r);
    }
    // Nothing of the client's runs and no program of the image changed: read from inside.
    r.extend(from_inside(id, inside, baseline, &dirs).await?);
    Ok(r)
}

/// The places listed from inside, the kernel state, and the changed directories' modes.
async fn from_inside(
    id: &str,
    inside: &Inside<'_>,
    baseline: &Baseline,
    dirs: &[String],
) -> Result<Vec<Residue>, BackendError> {
    let listed: Vec<String> = baseline
        .places
        .iter()
        .filter(|(_, p)| matches!(p.kind, PlaceKind::Emptied | PlaceKind::Listed))
        .map(|(path, _)| path.clone())
        .collect();
    let sums: Vec<String> = baseline
        .places
        .values()
        .flat_map(|p| p.state.iter().filter_map(|l| summed(l)).map(String::from))
        .collect();
    let mount_points: BTreeSet<String> = baseline
        .places
        .get(MOUNT_TABLE)
        .map(|p| {
            p.state
                .iter()
                .filter_map(|l| l.split(' ').next().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let now = inside
        .read(
            "residue",
            &Ask {
                lists: listed,
                mounts: mount_points,
                sums,
                dirs: dirs.to_vec(),
                first: false,
            },
        )
        .await?;
    let mounts = places::parse_mountinfo(&now.mounts).map_err(|e| fail(id, "residue", e))?;
    let mut r = Vec::new();
    let mut differs = |path: &str, was: &[String], now: &[String]| {
        if let Some(what) = places::listing_diff(was, now) {
            r.push(Residue::Place {
                path: path.to_string(),
                what,
            });
        }
    };
    for (path, p) in &baseline.places {
        match p.kind {
            PlaceKind::Kernel if path == MOUNT_TABLE => {
                differs(path, &p.state, &mount_table(&mounts));
            }
            PlaceKind::Kernel if path == XATTRS => {
                // Missing from a reading through the agent (which always has it) differs too.
                let none = vec!["(not read)".to_string()];
                differs(path, &p.state, now.xattrs.as_ref().unwrap_or(&none));
            }
            PlaceKind::Kernel => differs(path, &p.state, &places::ipc_objects(&now.ipc)),
            PlaceKind::Emptied | PlaceKind::Listed => {
                let mut listing = now.lists.get(path).cloned().unwrap_or_default();
                for f in p.state.iter().filter_map(|l| summed(l)) {
                    let sum = now.sums.get(f).cloned().unwrap_or_default();
                    listing.push(format!("sum {f}\t{sum}"));
                }
                differs(path, &p.state, &listing);
            }
            PlaceKind::Read => {}
        }
    }
    for d in dirs {
        let now = now.dirs.get(d).cloned().flatten();
        let was = baseline.dirs.get(d);
        if now.is_none() || now.as_ref() != was {
            r.push(Residue::Place {
                path: d.clone(),
                what: format!(
                    "the directory's mode or owner changed: {} (the image has {})",
                    now.as_deref().unwrap_or("not a directory"),
                    was.map_or("no such directory", String::as_str)
                ),
            });
        }
    }
    Ok(r)
}

/// The file a `sum PATH\tCHECKSUM` line of a place's state names.
fn summed(line: &str) -> Option<&str> {
    line.strip_prefix("sum ")?.split_once('\t').map(|(f, _)| f)
}

/// A place read whole through the engine (a bind mount, a volume): the SHA-256 of the
/// engine's tar of it (contents, modes, owners, times) and its length.
async fn read_digest(docker: &Docker, id: &str, path: &str) -> Result<String, BackendError> {
    let opts = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(id, Some(opts));
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| op_error("read place", id, e))?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok(format!("sha256:{} bytes:{n}", hex::encode(h.finalize())))
}

/// The container's processes as the engine lists them: `"<host pid> <command>"`. Zombies
/// (`<defunct>`) are left out: one holds nothing but its exit status, for a parent that is
/// either alive (and listed) or the container's init, which reaps it a moment later.
async fn top(docker: &Docker, id: &str) -> Result<Vec<String>, BackendError> {
    let opts = TopOptionsBuilder::default().ps_args("-ef").build();
    let t = docker
        .top_processes(id, Some(opts))
        .await
        .map_err(|e| op_error("top", id, e))?;
    let titles = t.titles.unwrap_or_default();
    let col = |name: &str| titles.iter().position(|t| t == name);
    let (Some(pid), Some(cmd)) = (col("PID"), col("CMD")) else {
        return Err(BackendError::Operation {
            stage: "top",
            container: id.into(),
            message: format!("unexpected columns {titles:?}"),
        });
    };
    let mut v: Vec<String> = t
        .processes
        .unwrap_or_default()
        .into_iter()
        .filter(|row| !row.get(cmd).is_some_and(|c| c.ends_with("<defunct>")))
        .map(|row| {
            format!(
                "{} {}",
                row.get(pid).map_or("", String::as_str),
                row.get(cmd).map_or("", String::as_str)
            )
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The container's filesystem changes against its image, as `docker diff` shows them.
async fn changes(docker: &Docker, id: &str) -> Result<Vec<FsChange>, BackendError> {
    let list = docker
        .container_changes(id)
        .await
        .map_err(|e| op_error("changes", id, e))?
        .unwrap_or_default();
    let mut v: Vec<FsChange> = list
        .into_iter()
        .map(|c| FsChange {
            kind: match c.kind {
                ChangeType::_1 => ChangeKind::Added,
                ChangeType::_2 => ChangeKind::Deleted,
                ChangeType::_0 => ChangeKind::Modified,
            },
            path: c.path,
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Whether `path` is a directory (not a symlink to one), as the engine stats it.
async fn is_dir(docker: &Docker, id: &str, path: &str) -> Result<bool, BackendError> {
    let opts = ContainerArchiveInfoOptionsBuilder::default()
        .path(path)
        .build();
    match docker.get_container_archive_info(id, Some(opts)).await {
        Ok(stat) => Ok(stat.file_mode & MODE_DIR != 0 && stat.file_mode & MODE_SYMLINK == 0),
        Err(e) if crate::status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(op_error("stat", id, e)),
    }
}
