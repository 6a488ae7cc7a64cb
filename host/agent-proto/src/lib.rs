//! # warmpool-agent-proto: the channel between the daemon and its agent
//!
//! Every sandbox of an `exec: agent` pool runs warmpool's agent as its first process. The daemon
//! talks to it over the container's own attached stdio, through the Engine API (no network in
//! the container is needed). This crate is that channel's one definition, compiled into both
//! ends: the frames ([`frame`]) and the messages they carry ([`msg`]).
//!
//! **Threat model.** The client inside the sandbox is hostile and may be root there. It cannot
//! open the agent's stdio (the agent is PID 1 and not dumpable, so `/proc/1/fd` is closed to
//! it, and it cannot be killed from inside); should it ever write there, it cannot forge a
//! frame: every frame carries an HMAC-SHA256 under a key only the daemon and the agent hold
//! (it reaches the agent as the first bytes on its stdin, never through the filesystem or the
//! container's config), over the direction, a session nonce and a sequence number, so a frame
//! cannot be replayed, reordered or reflected. The daemon treats a forged, late or missing
//! frame as a dead container.

pub mod frame;
pub mod msg;

pub use frame::{FrameError, Hello, Opener, Sealer};

/// The agent's protocol version; a daemon refuses an agent that answers another.
pub const VERSION: u32 = 1;
