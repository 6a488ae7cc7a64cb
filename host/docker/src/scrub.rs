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

mod places;
mod scripts;

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
use places::{Cover, MOUNT_TABLE, Mount, SYSV_IPC};
use scripts::{INDEX, INSPECT, LARGE, SCRUB, SMALL, checked, sections};

/// Go's `os.ModeDir` and `os.ModeSymlink`, as the engine reports a path's mode.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// The directory index of each image and spec (by the container's `warmpool.spec` label),
/// made from the first container of it and shared by the rest.
#[derive(Default)]
pub struct DirIndexes(Mutex<HashMap<String, Arc<BTreeMap<String, String>>>>);

/// What a fresh container looks like (its processes, layer changes, start time and every
/// writable place), for a later [`scrub`] and [`residue`] to return it to.
pub async fn baseline(
    docker: &Docker,
    id: &str,
    indexes: &DirIndexes,
) -> Result<Baseline, BackendError> {
    let processes = top(docker, id).await?;
    let changes = changes(docker, id).await?;
    let fail = |message: String| BackendError::Operation {
        stage: "baseline",
        container: id.into(),
        message,
    };
    let first = sections(&checked(docker, id, "baseline", INSPECT, &[], SMALL, true).await?)
        .map_err(fail)?;
    let uptime = first.get("uptime").map_or("", |s| s.trim());
    let secs: f64 = uptime
        .parse()
        .map_err(|_| fail(format!("cannot read the container's clock: {uptime:?}")))?;
    let mounts =
        places::parse_mountinfo(first.get("mounts").map_or("", String::as_str)).map_err(fail)?;
    let mut listed = Vec::new();
    let mut read = Vec::new();
    for m in &mounts {
        match m.cover().map_err(fail)? {
            Some(Cover::Listed) => listed.push(m.point.clone()),
            Some(Cover::Read) => read.push(m.point.clone()),
            Some(Cover::Layer) | None => {}
        }
    }
    let mut pl: BTreeMap<String, Place> = BTreeMap::new();
    pl.insert(MOUNT_TABLE.into(), kernel(mount_table(&mounts)));
    pl.insert(
        SYSV_IPC.into(),
        kernel(places::ipc_objects(
            first.get("ipc").map_or("", String::as_str),
        )),
    );
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
    let skip: BTreeSet<String> = mounts.iter().map(|m| m.point.clone()).collect();
    let args: Vec<String> = listed.iter().map(|p| format!("L:{p}")).collect();
    let second = sections(&checked(docker, id, "baseline", INSPECT, &args, SMALL, true).await?)
        .map_err(fail)?;
    let mut files = Vec::new();
    for p in &listed {
        let text = second.get(&format!("L:{p}")).map_or("", String::as_str);
        let listing = places::normalise_listing(p, text, &skip);
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
        let args: Vec<String> = files.iter().map(|(_, f)| format!("F:{f}")).collect();
        let sums = sections(&checked(docker, id, "baseline", INSPECT, &args, SMALL, true).await?)
            .map_err(fail)?;
        for (place, f) in &files {
            let sum = sums.get(&format!("F:{f}")).map_or("", |s| s.trim());
            let line = format!("sum {f}\t{sum}");
            if let Some(p) = pl.get_mut(place) {
                p.state.push(line);
            }
        }
    }
    let dirs = index(docker, id, indexes, &mounts).await?;
    Ok(Baseline {
        processes,
        changes,
        started_before: (secs * 100.0).round() as u64,
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
    indexes: &DirIndexes,
    mounts: &[Mount],
) -> Result<Arc<BTreeMap<String, String>>, BackendError> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| op_error("inspect", id, e))?;
    let key = c
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get(crate::labels::SPEC).cloned())
        .unwrap_or_else(|| c.image.unwrap_or_default());
    if let Some(found) = indexes
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(found.clone());
    }
    let top: Vec<String> = mounts
        .iter()
        .filter(|m| m.point != "/" && m.point.matches('/').count() == 1)
        .map(|m| m.point.clone())
        .collect();
    let text = checked(docker, id, "directory index", INDEX, &top, LARGE, true).await?;
    let made = Arc::new(places::dir_index(&text));
    indexes
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, made.clone());
    Ok(made)
}

/// Return a released container to its baseline: kill what the lease started and empty the
/// places that were empty, before the container may be lent again. Any step that cannot
/// finish is an error.
pub async fn scrub(docker: &Docker, id: &str, baseline: &Baseline) -> Result<(), BackendError> {
    let mut args = vec![baseline.started_before.to_string()];
    for (path, p) in &baseline.places {
        if p.kind == PlaceKind::Emptied {
            let mode = places::root_mode(&p.state).ok_or_else(|| BackendError::Operation {
                stage: "scrub",
                container: id.into(),
                message: format!("no mode recorded for {path}"),
            })?;
            args.push(format!("{mode}:{path}"));
        }
    }
    checked(docker, id, "scrub", SCRUB, &args, SMALL, false).await?;
    Ok(())
}

/// What differs from the baseline after a scrub: empty means the container may be lent again.
/// What the engine reads comes first; a listing from inside is believed only when that found
/// nothing.
pub async fn residue(
    docker: &Docker,
    id: &str,
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
    // of their own. Anything else new is residue.
    let mut dirs = Vec::new();
    for c in &now {
        if c.kind == ChangeKind::Modified && is_dir(docker, id, &c.path).await? {
            dirs.push(c.path.clone());
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
    r.extend(inside(docker, id, baseline, &dirs).await?);
    Ok(r)
}

/// The places listed from inside, the kernel state, and the changed directories' modes.
async fn inside(
    docker: &Docker,
    id: &str,
    baseline: &Baseline,
    dirs: &[String],
) -> Result<Vec<Residue>, BackendError> {
    let fail = |message: String| BackendError::Operation {
        stage: "residue",
        container: id.into(),
        message,
    };
    let mut args = Vec::new();
    for (path, p) in &baseline.places {
        if matches!(p.kind, PlaceKind::Emptied | PlaceKind::Listed) {
            args.push(format!("L:{path}"));
            args.extend(
                p.state
                    .iter()
                    .filter_map(|l| summed(l))
                    .map(|f| format!("F:{f}")),
            );
        }
    }
    args.extend(dirs.iter().map(|d| format!("D:{d}")));
    let out = sections(&checked(docker, id, "residue", INSPECT, &args, SMALL, true).await?)
        .map_err(fail)?;
    let mounts =
        places::parse_mountinfo(out.get("mounts").map_or("", String::as_str)).map_err(fail)?;
    let skip: BTreeSet<String> = mounts.iter().map(|m| m.point.clone()).collect();
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
            PlaceKind::Kernel => {
                let now = places::ipc_objects(out.get("ipc").map_or("", String::as_str));
                differs(path, &p.state, &now);
            }
            PlaceKind::Emptied | PlaceKind::Listed => {
                let text = out.get(&format!("L:{path}")).map_or("", String::as_str);
                let mut now = places::normalise_listing(path, text, &skip);
                for f in p.state.iter().filter_map(|l| summed(l)) {
                    let sum = out.get(&format!("F:{f}")).map_or("", |s| s.trim());
                    now.push(format!("sum {f}\t{sum}"));
                }
                differs(path, &p.state, &now);
            }
            PlaceKind::Read => {}
        }
    }
    for d in dirs {
        let line = out.get(&format!("D:{d}")).map_or("", |s| s.trim());
        let now = places::dir_meta(line).map(|(_, meta, _)| meta);
        let was = baseline.dirs.get(d);
        if now.is_none() || now.as_ref() != was {
            r.push(Residue::Place {
                path: d.clone(),
                what: format!(
                    "the directory's mode or owner changed: {} (the image has {})",
                    now.as_deref().unwrap_or(line),
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

/// The container's processes as the engine lists them: `"<host pid> <command>"`.
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
