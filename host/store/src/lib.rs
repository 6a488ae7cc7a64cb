//! # warmpool-store: leases and the lendable set in one redb file
//!
//! The pool core decides *what* to persist and *when* (group commit, see
//! `warmpool_core::group_commit`); this crate only keeps it, in a single redb database file under the
//! configured `state_dir`. Each commit is one redb write transaction with immediate durability, so
//! when [`LeaseStore::commit`] returns `Ok` the batch survives `kill -9` and power loss.
//!
//! Three tables: `leases` (lease ID → the lease record as JSON, so adding a field never breaks an
//! old file), `lendable` (container ID → pool name) and `scales` (pool name → its scale override
//! as JSON). A clean shutdown's `Clear` empties the first two and keeps the overrides. A file
//! written before `scales` existed gets the table at its first open.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use warmpool_core::lease_store::{
    Change, LeaseRecord, LeaseStore, Persisted, ScaleRecord, StoreError,
};

const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const LENDABLE: TableDefinition<&str, &str> = TableDefinition::new("lendable");
const SCALES: TableDefinition<&str, &[u8]> = TableDefinition::new("scales");

/// How long [`RedbStore::open`] waits for the file's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The file name inside `state_dir`.
pub const FILE_NAME: &str = "warmpool-state.redb";

/// The [`LeaseStore`] of a daemon with `state_dir`: leases and the lendable set in one redb
/// file, locked against a second daemon.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Open (or create) the store in `state_dir`, creating the directory if needed.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Self::open_within(state_dir, LOCK_WAIT)
    }

    /// Open, waiting up to `wait` for another process to let go of the file's lock: a restart
    /// right after a `kill -9` can begin before the old process has fully exited.
    pub fn open_within(state_dir: &Path, wait: Duration) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| open_err(e.to_string()))?;
        let deadline = Instant::now() + wait;
        let db = loop {
            match Database::create(&path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(open_err(format!(
                        "another process holds it (waited {wait:?}); is a daemon with the same state_dir running?"
                    )));
                }
                Err(e) => return Err(open_err(e.to_string())),
            }
        };
        // Create every table up front so a read of a fresh (or older) file finds them.
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        txn.open_table(LEASES)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(LENDABLE)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(SCALES)
            .map_err(|e| open_err(e.to_string()))?;
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(Self { db, path })
    }

    /// The redb file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn load_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Load(e.to_string())
}

fn commit_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Commit(e.to_string())
}

impl LeaseStore for RedbStore {
    fn load(&self) -> Result<Persisted, StoreError> {
        let txn = self.db.begin_read().map_err(load_err)?;
        let mut out = Persisted::default();
        let leases = txn.open_table(LEASES).map_err(load_err)?;
        for row in leases.iter().map_err(load_err)? {
            let (k, v) = row.map_err(load_err)?;
            // One unreadable record must not cost the others: skip it, loudly.
            match serde_json::from_slice::<LeaseRecord>(v.value()) {
                Ok(rec) => {
                    out.leases.insert(k.value().to_string(), rec);
                }
                Err(e) => {
                    tracing::warn!(lease = k.value(), error = %e, "skipping an unreadable lease record")
                }
            }
        }
        let lendable = txn.open_table(LENDABLE).map_err(load_err)?;
        for row in lendable.iter().map_err(load_err)? {
            let (k, v) = row.map_err(load_err)?;
            out.lendable
                .insert(k.value().to_string(), v.value().to_string());
        }
        let scales = txn.open_table(SCALES).map_err(load_err)?;
        for row in scales.iter().map_err(load_err)? {
            let (k, v) = row.map_err(load_err)?;
            match serde_json::from_slice::<ScaleRecord>(v.value()) {
                Ok(rec) => {
                    out.scales.insert(k.value().to_string(), rec);
                }
                Err(e) => {
                    tracing::warn!(pool = k.value(), error = %e, "skipping an unreadable scale override")
                }
            }
        }
        Ok(out)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(commit_err)?;
        {
            let mut leases = txn.open_table(LEASES).map_err(commit_err)?;
            let mut lendable = txn.open_table(LENDABLE).map_err(commit_err)?;
            let mut scales = txn.open_table(SCALES).map_err(commit_err)?;
            for c in changes {
                match c {
                    Change::PutLease(r) => {
                        let json = serde_json::to_vec(r).map_err(commit_err)?;
                        leases
                            .insert(r.lease_id.as_str(), json.as_slice())
                            .map_err(commit_err)?;
                    }
                    Change::DropLease(id) => {
                        leases.remove(id.as_str()).map_err(commit_err)?;
                    }
                    Change::Lendable { container, pool } => {
                        lendable
                            .insert(container.as_str(), pool.as_str())
                            .map_err(commit_err)?;
                    }
                    Change::Forget(id) => {
                        lendable.remove(id.as_str()).map_err(commit_err)?;
                    }
                    Change::PutScale(r) => {
                        let json = serde_json::to_vec(r).map_err(commit_err)?;
                        scales
                            .insert(r.pool.as_str(), json.as_slice())
                            .map_err(commit_err)?;
                    }
                    Change::DropScale(pool) => {
                        scales.remove(pool.as_str()).map_err(commit_err)?;
                    }
                    // Overrides are kept: see `Change::Clear`.
                    Change::Clear => {
                        leases.retain(|_, _| false).map_err(commit_err)?;
                        lendable.retain(|_, _| false).map_err(commit_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(commit_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, container: &str) -> LeaseRecord {
        LeaseRecord {
            engine: None,
            lease_id: id.into(),
            pool: "py".into(),
            owner: Some("agent-7".into()),
            tenant: Some("team-a".into()),
            container_id: container.into(),
            container_name: format!("warmpool-py-{container}"),
            image: "python:3".into(),
            image_id: "sha256:abc".into(),
            source: "pool".into(),
            acquired_at_ms: 1_000,
            expires_at_ms: 61_000,
            born_at_ms: 500,
            uses: 2,
            resources: None,
            suspended_at_ms: None,
        }
    }

    #[test]
    fn a_commit_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let changes = vec![
            Change::Lendable {
                container: "c1".into(),
                pool: "py".into(),
            },
            Change::Lendable {
                container: "c2".into(),
                pool: "py".into(),
            },
            Change::PutLease(record("l1", "c1")),
            Change::PutLease(record("l2", "c2")),
            Change::DropLease("l2".into()),
            Change::Forget("c2".into()),
        ];
        let mut expected = Persisted::default();
        expected.apply(&changes);
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store.commit(&changes).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let got = store.load().unwrap();
        assert_eq!(got, expected);
        assert_eq!(got.leases["l1"].owner.as_deref(), Some("agent-7"));
        assert_eq!(got.leases["l1"].uses, 2);
        assert_eq!(got.lendable.keys().collect::<Vec<_>>(), ["c1"]);

        store.commit(&[Change::Clear]).unwrap();
        assert_eq!(store.load().unwrap(), Persisted::default());
    }

    fn scale(pool: &str, min: u32) -> ScaleRecord {
        ScaleRecord {
            pool: pool.into(),
            min_ready: min,
            max_ready: 8,
            config_sizes: [1, 4, 10],
        }
    }

    /// A scale override survives reopening and a clean shutdown's clear; a drop forgets it.
    #[test]
    fn a_scale_override_survives_reopening_and_clear_but_not_its_drop() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store
                .commit(&[
                    Change::PutScale(scale("py", 2)),
                    Change::PutScale(scale("py", 5)),
                    Change::PutScale(scale("go", 3)),
                    Change::PutLease(record("l1", "c1")),
                ])
                .unwrap();
            store.commit(&[Change::Clear]).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let got = store.load().unwrap();
        assert!(got.leases.is_empty() && got.lendable.is_empty());
        assert_eq!(got.scales.len(), 2);
        assert_eq!(got.scales["py"], scale("py", 5));
        store.commit(&[Change::DropScale("py".into())]).unwrap();
        let got = store.load().unwrap();
        assert_eq!(got.scales.keys().collect::<Vec<_>>(), ["go"]);
    }

    #[test]
    fn an_unusable_state_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = RedbStore::open(&file).err().expect("must fail");
        let msg = err.to_string();
        assert!(msg.contains("not-a-dir"), "{msg}");
    }

    #[test]
    fn a_restart_waits_for_the_old_process_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open_within(dir.path(), Duration::from_millis(100))
            .err()
            .expect("the file is held");
        assert!(
            err.to_string().contains("another process holds it"),
            "{err}"
        );
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        RedbStore::open_within(dir.path(), Duration::from_secs(10)).expect("opens once released");
        t.join().unwrap();
    }
}
