//! Reuse's scrub on the Docker engine: the baseline of a fresh container, the scrub itself, and
//! the check of what a client left.
//!
//! What the checks trust: the process list comes from the engine (`GET /containers/{id}/top`,
//! read on the host), and the filesystem changes too (`GET /containers/{id}/changes`, what
//! `docker diff` shows, plus the engine's own stat of a path). No program inside the container,
//! which a client could have replaced, takes part in them. The scrub's actions (killing, emptying
//! the tmpfs mounts) and the tmpfs listing do run `/bin/sh` in the container, as the container's
//! user: a client that replaced it can only make the scrub fail, and a replaced binary shows up
//! as a filesystem change, which destroys the container before the listing is believed.

use std::collections::HashSet;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ChangeType;
use bollard::query_parameters::{ContainerArchiveInfoOptionsBuilder, TopOptionsBuilder};
use warmpool_core::{BackendError, Baseline, ChangeKind, FsChange, Residue};

use crate::exec::script;
use crate::op_error;

/// Go's `os.ModeDir` and `os.ModeSymlink`, as the engine reports a path's mode.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// Kills every process started after the baseline (its start time, in clock ticks since boot,
/// is above `$1`), in up to five rounds so that a process forking meanwhile is caught, then
/// empties the tmpfs mounts given as the other arguments. PID 1, the script and its own
/// children are spared.
const SCRUB: &str = r#"T=$1; shift; mounts="$*"; me=$$
for round in 1 2 3 4 5; do
  left=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}; [ "$p" = 1 ] && continue; [ "$p" = "$me" ] && continue
    read -r s < "$d/stat" 2>/dev/null || continue
    s=${s##*) }; set -- $s; sid=$4; shift 19; start=$1
    [ "$sid" = "$me" ] && continue
    [ "$start" -gt "$T" ] || continue
    kill -9 "$p" 2>/dev/null && left=1
  done
  [ $left = 0 ] && break
done
for m in $mounts; do
  [ -d "$m" ] || continue
  rm -rf "$m"/* "$m"/.[!.]* "$m"/..?* 2>/dev/null
done
exit 0"#;

/// Lists each tmpfs mount's entries, one `== mount` header each.
const LIST_TMPFS: &str = r#"for m in "$@"; do
  echo "== $m"
  [ -d "$m" ] || continue
  ls -A "$m" 2>/dev/null
done"#;

/// The container's clock in ticks since boot (`/proc/uptime` × 100, Linux's `USER_HZ`).
const UPTIME: &str = r#"read -r u _ < /proc/uptime; echo "$u""#;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a fresh container looks like (its processes, filesystem changes and start time), for
/// a later [`scrub`] to return it to.
pub async fn baseline(docker: &Docker, id: &str) -> Result<Baseline, BackendError> {
    let processes = top(docker, id).await?;
    let changes = changes(docker, id).await?;
    let out = script(docker, id, UPTIME, &[], SCRIPT_TIMEOUT).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.trim().parse().map_err(|_| BackendError::Operation {
        stage: "baseline",
        container: id.into(),
        message: format!("cannot read the container's clock: {:?}", text.trim()),
    })?;
    Ok(Baseline {
        processes,
        changes,
        started_before: (secs * 100.0).round() as u64,
    })
}

/// Return a released container to its baseline: kill what the lease started and remove what
/// it wrote, before the container may be lent again.
pub async fn scrub(
    docker: &Docker,
    id: &str,
    baseline: &Baseline,
    tmpfs: &[String],
) -> Result<(), BackendError> {
    let t = baseline.started_before.to_string();
    let mut args: Vec<&str> = vec![&t];
    args.extend(tmpfs.iter().map(String::as_str));
    let out = script(docker, id, SCRUB, &args, SCRIPT_TIMEOUT).await?;
    if out.exit_code != Some(0) {
        return Err(BackendError::Operation {
            stage: "scrub",
            container: id.into(),
            message: format!(
                "exited {:?}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// What differs from the baseline after a scrub (processes, files, tmpfs content): empty means
/// the container may be lent again.
pub async fn residue(
    docker: &Docker,
    id: &str,
    baseline: &Baseline,
    tmpfs: &[String],
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
    for c in now.iter().filter(|c| !was.contains(c)) {
        // A directory whose added children were all removed again shows as changed; its
        // children's own entries say whether anything is left in it.
        if c.kind == ChangeKind::Modified && is_dir(docker, id, &c.path).await? {
            continue;
        }
        r.push(Residue::Path(c.clone()));
    }
    for c in baseline.changes.iter().filter(|c| !now_set.contains(c)) {
        r.push(Residue::Path(FsChange {
            kind: ChangeKind::Deleted,
            path: c.path.clone(),
        }));
    }
    // Only believe a listing from inside the container once its programs are known untouched.
    if r.is_empty() && !tmpfs.is_empty() {
        let args: Vec<&str> = tmpfs.iter().map(String::as_str).collect();
        let out = script(docker, id, LIST_TMPFS, &args, SCRIPT_TIMEOUT).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut mount: Option<String> = None;
        let mut entries: Vec<String> = Vec::new();
        let mut flush = |mount: &mut Option<String>, entries: &mut Vec<String>| {
            if let Some(m) = mount.take()
                && !entries.is_empty()
            {
                r.push(Residue::Tmpfs {
                    mount: m,
                    entries: std::mem::take(entries),
                });
            }
            entries.clear();
        };
        for line in text.lines() {
            match line.strip_prefix("== ") {
                Some(m) => {
                    flush(&mut mount, &mut entries);
                    mount = Some(m.to_string());
                }
                None if !line.is_empty() => entries.push(line.to_string()),
                None => {}
            }
        }
        flush(&mut mount, &mut entries);
    }
    Ok(r)
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
