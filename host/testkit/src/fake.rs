//! An in-memory container engine for tests of the pool logic (run under paused tokio time), of
//! the API, and for the fault simulation.
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

mod agent;
mod backend;
mod engine;
mod exec;
mod gate;
mod reuse;
mod session;

pub use backend::{FAKE_HOST, FakeBackend};
pub use engine::*;
pub use gate::{CALL_DEADLINE, EXEC_SLACK};
