//! # warmpool-fake: the in-memory engine and store
//!
//! An in-memory container engine for tests of the pool logic (run under paused tokio time), of
//! the API, for the fault simulation (`warmpool-testkit`) and for the policy lab
//! (`warmpool-lab`). Only tests and those two link it; the daemon never does.
//!
//! [`FakeEngine`] is the world: containers with their files, tmpfs contents and processes, and
//! the faults to inject. [`FakeBackend`] is one daemon's connection to it; a simulated `kill -9`
//! ([`FakeBackend::crash`]) makes every later call through that connection hang forever, while
//! the engine (and what a create in flight made) stays, as a real engine would.
//!
//! Exec understands a few commands, so tests can act as clients:
//!
//! | command                     | does                                                        |
//! |-----------------------------|-------------------------------------------------------------|
//! | `write PATH TEXT`           | writes a file (into a bind mount or tmpfs when under one)   |
//! | `hide MOUNT`                | makes a tmpfs mount unreadable to the scrub                 |
//! | `spawn TAG`                 | leaves a background process in the exec's session           |
//! | `sleep MS`                  | runs MS ms; past its timeout, its session's processes die   |
//! | `clean DIR…`                | removes the files under each DIR                            |
//! | `check-empty DIR…`          | exits 1 if a file remains under a DIR                       |
//! | `die`                       | the container's main process exits                          |
//! | `false`                     | exits 1                                                     |
//! | anything else               | exits 0, echoing the command                                |
//!
//! Where things live: the engine's world and its faults in `engine.rs`; the `Backend`
//! implementation in `backend.rs`, every call passing the gate of `gate.rs` (dead connections,
//! a down engine, hangs, injected failures); the commands above in `exec.rs`, sessions and
//! terminals in `session.rs`, the reuse readings in `reuse.rs`, the agent's faults in
//! `agent.rs`; and [`MemoryStore`], the in-memory state store, in `store.rs`.

mod agent;
mod backend;
mod engine;
mod exec;
mod gate;
mod hibernate;
mod reuse;
mod session;
mod store;

pub use backend::{FAKE_HOST, FakeBackend};
pub use engine::*;
pub use gate::{CALL_DEADLINE, EXEC_SLACK};
pub use store::MemoryStore;
