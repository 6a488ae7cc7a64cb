//! Reuse on the fake engine: the baseline, the scrub and the residue check, as the Docker
//! backend does them, on the in-memory container. Its writable places are the layer (`files`),
//! its tmpfs mounts (`/dev` and the spec's, in `tmpfs`) and its bind mounts (`binds`); a mount a
//! client hid (`hide`) cannot be listed, and a scrub or check that meets one fails, as the
//! real one must.

use std::collections::{BTreeMap, BTreeSet};

use warmpool_core::{BackendError, Baseline, ChangeKind, FsChange, Place, PlaceKind, Residue};

use crate::FakeBackend;
use crate::engine::FakeContainer;
use crate::gate::under;

const MOUNT_TABLE: &str = "mount table";

/// The entries of mount `m` (not those of a mount inside it), as a listing.
fn listing(c: &FakeContainer, m: &str) -> Vec<String> {
    let inner: Vec<&String> = c
        .tmpfs_mounts
        .iter()
        .filter(|o| o.as_str() != m && under(o, m))
        .collect();
    c.tmpfs
        .iter()
        .filter(|(p, _)| under(p, m) && !inner.iter().any(|o| under(p, o)))
        .map(|(p, d)| format!("{p} {}", d.len()))
        .collect()
}

fn digest(data: &[u8]) -> String {
    // FNV-1a: the fake needs a fingerprint, not a cryptographic one.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x} {}", data.len())
}

fn unreadable(id: &str, stage: &'static str, m: &str) -> BackendError {
    BackendError::Operation {
        stage,
        container: id.into(),
        message: format!("ls: can't open '{m}': Permission denied"),
    }
}

impl FakeBackend {
    pub(crate) fn baseline_of(&self, id: &str, tick: u64) -> Result<Baseline, BackendError> {
        let w = self.state();
        let c = w.containers.get(id).ok_or_else(|| BackendError::NotFound {
            what: "container",
            subject: id.into(),
        })?;
        let mut places = BTreeMap::new();
        places.insert(
            MOUNT_TABLE.to_string(),
            Place {
                kind: PlaceKind::Kernel,
                state: c.tmpfs_mounts.clone(),
            },
        );
        for m in &c.tmpfs_mounts {
            if c.hidden.contains(m) {
                return Err(unreadable(id, "baseline", m));
            }
            let l = listing(c, m);
            places.insert(
                m.clone(),
                Place {
                    kind: if l.is_empty() {
                        PlaceKind::Emptied
                    } else {
                        PlaceKind::Listed
                    },
                    state: l,
                },
            );
        }
        for (p, data) in &c.binds {
            places.insert(
                p.clone(),
                Place {
                    kind: PlaceKind::Read,
                    state: vec![digest(data)],
                },
            );
        }
        Ok(Baseline {
            processes: c
                .procs
                .iter()
                .map(|(pid, p)| format!("{pid} {}", p.cmd))
                .collect(),
            changes: c
                .files
                .keys()
                .map(|p| FsChange {
                    kind: ChangeKind::Added,
                    path: p.clone(),
                })
                .collect(),
            started_before: tick,
            places,
            dirs: Default::default(),
        })
    }

    /// Kill what started after the baseline, empty the places that were empty. A hidden one
    /// cannot be emptied: the scrub fails.
    pub(crate) fn scrub_of(&self, id: &str, baseline: &Baseline) -> Result<(), BackendError> {
        let mut w = self.state();
        let Some(c) = w.containers.get_mut(id) else {
            return Ok(());
        };
        c.procs.retain(|_, p| p.started <= baseline.started_before);
        c.lease_env.clear();
        for (m, place) in &baseline.places {
            if place.kind != PlaceKind::Emptied {
                continue;
            }
            if c.hidden.contains(m) {
                return Err(unreadable(id, "scrub", m));
            }
            let inner: Vec<String> = c
                .tmpfs_mounts
                .iter()
                .filter(|o| *o != m && under(o, m))
                .cloned()
                .collect();
            c.tmpfs
                .retain(|p, _| !under(p, m) || inner.iter().any(|o| under(p, o)));
        }
        Ok(())
    }

    pub(crate) fn residue_of(
        &self,
        id: &str,
        baseline: &Baseline,
    ) -> Result<Vec<Residue>, BackendError> {
        let w = self.state();
        let c = w.containers.get(id).expect("checked running");
        let mut r = Vec::new();
        for (pid, p) in &c.procs {
            let line = format!("{pid} {}", p.cmd);
            if !baseline.processes.contains(&line) {
                r.push(Residue::Process(line));
            }
        }
        let was: BTreeSet<&str> = baseline.changes.iter().map(|c| c.path.as_str()).collect();
        for p in c.files.keys().filter(|p| !was.contains(p.as_str())) {
            r.push(Residue::Path(FsChange {
                kind: ChangeKind::Added,
                path: p.clone(),
            }));
        }
        for p in was.iter().filter(|p| !c.files.contains_key(**p)) {
            r.push(Residue::Path(FsChange {
                kind: ChangeKind::Deleted,
                path: p.to_string(),
            }));
        }
        for (name, place) in &baseline.places {
            let now = match place.kind {
                PlaceKind::Kernel => c.tmpfs_mounts.clone(),
                PlaceKind::Read => vec![digest(c.binds.get(name).map_or(&[][..], |d| d))],
                PlaceKind::Emptied | PlaceKind::Listed => {
                    if c.hidden.contains(name) {
                        return Err(unreadable(id, "residue", name));
                    }
                    listing(c, name)
                }
            };
            if now != place.state {
                r.push(Residue::Place {
                    path: name.clone(),
                    what: format!("holds {now:?}, was {:?}", place.state),
                });
            }
        }
        Ok(r)
    }
}
