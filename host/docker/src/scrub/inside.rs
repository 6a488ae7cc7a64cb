//! What the scrub reads and does inside a container, two ways: through its agent (no program of
//! the image takes part; extended attributes are read too), or through the engine's exec of
//! the image's own `sh` and `ls` (see `scripts.rs`). Both give the same shapes: the mount
//! table's text, the SysV IPC objects, each place's normalised listing, checksums, and the
//! mode and owner of directories. One container is always read the same way, so its baseline
//! and its later readings compare.

use std::collections::{BTreeMap, BTreeSet};

use bollard::Docker;
use warmpool_agent_proto::msg::Inspect;
use warmpool_core::BackendError;

use super::places;
use super::scripts::{INDEX, INSPECT, LARGE, SCRUB, SMALL, checked, sections};
use crate::agent::channel::Channel;
use crate::agent::ops;

/// How to reach inside one container.
pub enum Inside<'a> {
    /// The image's shell, through the engine's exec.
    Script {
        /// The engine.
        docker: &'a Docker,
        /// The container.
        id: &'a str,
    },
    /// The container's agent.
    Agent(&'a Channel),
}

/// One reading of a container from inside.
#[derive(Debug, Default)]
pub struct Reading {
    /// The container's clock, in ticks since boot (the baseline's first reading only).
    pub ticks: u64,
    /// `/proc/self/mountinfo`.
    pub mounts: String,
    /// SysV IPC objects, `KIND <line>` each.
    pub ipc: String,
    /// Each listed place's normalised listing.
    pub lists: BTreeMap<String, Vec<String>>,
    /// Each file's checksum.
    pub sums: BTreeMap<String, String>,
    /// Each directory asked: its mode, owner (and, through the agent, extended attributes),
    /// or `None` when it is not a directory.
    pub dirs: BTreeMap<String, Option<String>>,
    /// Through the agent: every path of the root filesystem that carries extended attributes.
    /// `None` through the script (no tool for them is in every image).
    pub xattrs: Option<Vec<String>>,
}

/// What to read.
#[derive(Debug, Default)]
pub struct Ask {
    /// Places to list, with the mount points not to enter.
    pub lists: Vec<String>,
    /// Every mount point (listings skip those inside the place listed).
    pub mounts: BTreeSet<String>,
    /// Files to checksum.
    pub sums: Vec<String>,
    /// Directories to stat.
    pub dirs: Vec<String>,
    /// A baseline's first reading: record the baseline of processes (agent) and read the
    /// clock.
    pub first: bool,
}

fn fail(id: &str, stage: &'static str, message: String) -> BackendError {
    BackendError::Operation {
        stage,
        container: id.into(),
        message,
    }
}

impl Inside<'_> {
    fn id(&self) -> &str {
        match self {
            Inside::Script { id, .. } => id,
            Inside::Agent(ch) => &ch.container,
        }
    }

    /// Read what `ask` asks, in one round trip. Anything that cannot be read whole is an
    /// error.
    pub async fn read(&self, stage: &'static str, ask: &Ask) -> Result<Reading, BackendError> {
        match self {
            Inside::Script { docker, id } => read_script(docker, id, stage, ask).await,
            Inside::Agent(ch) => read_agent(ch, stage, ask).await,
        }
    }

    /// The image's directories (mode and owner, by absolute path), not entering `mounts`.
    pub async fn dir_index(
        &self,
        mounts: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        match self {
            Inside::Script { docker, id } => {
                let top: Vec<String> = mounts
                    .iter()
                    .filter(|m| m.as_str() != "/" && m.matches('/').count() == 1)
                    .cloned()
                    .collect();
                let text = checked(docker, id, "directory index", INDEX, &top, LARGE, true).await?;
                Ok(places::dir_index(&text))
            }
            Inside::Agent(ch) => {
                let skip = mounts
                    .iter()
                    .filter(|m| m.as_str() != "/")
                    .cloned()
                    .collect();
                let mut r = ops::inspect(ch, vec![Inspect::Dirs { skip }]).await?;
                let lines = r
                    .pop()
                    .ok_or_else(|| fail(self.id(), "directory index", "no answer".into()))?
                    .map_err(|e| fail(self.id(), "directory index", e))?;
                Ok(lines
                    .iter()
                    .filter_map(|l| places::split_line(l))
                    .map(|(meta, path)| (path.to_string(), meta.to_string()))
                    .collect())
            }
        }
    }

    /// Kill everything started after the baseline (`ticks`, for the script), and empty each
    /// `(mode, path)` place.
    pub async fn scrub(&self, ticks: u64, emptied: &[(u32, String)]) -> Result<(), BackendError> {
        match self {
            Inside::Script { docker, id } => {
                let mut args = vec![ticks.to_string()];
                args.extend(emptied.iter().map(|(m, p)| format!("{m:o}:{p}")));
                checked(docker, id, "scrub", SCRUB, &args, SMALL, false).await?;
                Ok(())
            }
            Inside::Agent(ch) => ops::scrub(ch, emptied.to_vec()).await,
        }
    }
}

async fn read_script(
    docker: &Docker,
    id: &str,
    stage: &'static str,
    ask: &Ask,
) -> Result<Reading, BackendError> {
    let mut args: Vec<String> = ask.lists.iter().map(|p| format!("L:{p}")).collect();
    args.extend(ask.sums.iter().map(|f| format!("F:{f}")));
    args.extend(ask.dirs.iter().map(|d| format!("D:{d}")));
    let out = sections(&checked(docker, id, stage, INSPECT, &args, SMALL, true).await?)
        .map_err(|e| fail(id, stage, e))?;
    let get = |k: &str| out.get(k).cloned().unwrap_or_default();
    let uptime = get("uptime");
    let ticks = if ask.first {
        let secs: f64 = uptime.trim().parse().map_err(|_| {
            fail(
                id,
                stage,
                format!("cannot read the container's clock: {:?}", uptime.trim()),
            )
        })?;
        (secs * 100.0).round() as u64
    } else {
        0
    };
    let mut r = Reading {
        ticks,
        mounts: get("mounts"),
        ipc: get("ipc"),
        ..Reading::default()
    };
    for p in &ask.lists {
        let text = get(&format!("L:{p}"));
        r.lists
            .insert(p.clone(), places::normalise_listing(p, &text, &ask.mounts));
    }
    for f in &ask.sums {
        r.sums
            .insert(f.clone(), get(&format!("F:{f}")).trim().to_string());
    }
    for d in &ask.dirs {
        let line = get(&format!("D:{d}"));
        let meta = places::dir_meta(line.trim()).and_then(|(_, meta, dir)| dir.then_some(meta));
        r.dirs.insert(d.clone(), meta);
    }
    Ok(r)
}

async fn read_agent(ch: &Channel, stage: &'static str, ask: &Ask) -> Result<Reading, BackendError> {
    let id = ch.container.as_str();
    let ticks = if ask.first {
        ops::baseline(ch).await?
    } else {
        0
    };
    let mut items = vec![
        Inspect::Read("/proc/self/mountinfo".into()),
        Inspect::Read("/proc/sysvipc/shm".into()),
        Inspect::Read("/proc/sysvipc/msg".into()),
        Inspect::Read("/proc/sysvipc/sem".into()),
    ];
    // The first reading does not know the mount points yet: the extended attributes come with
    // the second (the listings), and every later one.
    let xattrs = !ask.first;
    if xattrs {
        let skip = ask
            .mounts
            .iter()
            .filter(|m| m.as_str() != "/")
            .cloned()
            .collect();
        items.push(Inspect::Xattrs { skip });
    }
    for p in &ask.lists {
        let skip = ask
            .mounts
            .iter()
            .filter(|m| m.as_str() != p && places::is_under(m, p))
            .cloned()
            .collect();
        items.push(Inspect::List {
            path: p.clone(),
            skip,
        });
    }
    items.extend(ask.sums.iter().map(|f| Inspect::Sum(f.clone())));
    items.extend(ask.dirs.iter().map(|d| Inspect::Stat(d.clone())));
    let mut answers = ops::inspect(ch, items).await?.into_iter();
    let mut next = |what: &str| -> Result<Vec<String>, BackendError> {
        answers
            .next()
            .ok_or_else(|| fail(id, stage, format!("no answer for {what}")))?
            .map_err(|e| fail(id, stage, e))
    };
    let mounts = next("the mount table")?.join("\n");
    let mut ipc = String::new();
    for kind in ["shm", "msg", "sem"] {
        for l in next("SysV IPC")?.into_iter().skip(1) {
            ipc.push_str(&format!("{kind} {l}\n"));
        }
    }
    let xattrs = if xattrs {
        Some(next("extended attributes")?)
    } else {
        None
    };
    let mut r = Reading {
        ticks,
        mounts,
        ipc,
        xattrs,
        ..Reading::default()
    };
    for p in &ask.lists {
        r.lists.insert(p.clone(), next(p)?);
    }
    for f in &ask.sums {
        r.sums.insert(f.clone(), next(f)?.join(" "));
    }
    for d in &ask.dirs {
        let line = next(d)?.join("");
        let meta = places::split_line(&line)
            .and_then(|(meta, _)| meta.starts_with('d').then(|| meta.to_string()));
        r.dirs.insert(d.clone(), meta);
    }
    Ok(r)
}
