//! Why a plugin could not be loaded or a call into it failed: the one error type every stage
//! (read, compile, link, `init`, a call) reports, its message naming the stage.

use std::time::Duration;

/// Why a plugin could not be loaded or a call failed. Each names the stage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("read {path}: {message}")]
    Read {
        /// The plugin file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The file is not a valid wasm component.
    #[error("compile {path}: not a valid wasm component: {message}")]
    Compile {
        /// The plugin file.
        path: String,
        /// The compiler's error.
        message: String,
    },
    /// The component does not fit the world it was loaded for.
    #[error("link {path}: not a {world} component: {message}")]
    World {
        /// The plugin file.
        path: String,
        /// The expected world's WIT name, e.g. `sizing-policy`.
        world: &'static str,
        /// The linker's error.
        message: String,
    },
    /// `init` returned an error (the guest's message, clipped), or the compile task failed.
    #[error("init: {0}")]
    Init(String),
    /// A call, or a load, overran its wall-clock deadline.
    #[error("call exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// The instance tried to grow its linear memory past the cap, in bytes.
    #[error("call hit the memory cap of {0} bytes")]
    Memory(usize),
    /// The guest trapped: its last error log or output, else wasmtime's error (clipped).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest's answer broke the interface's rules (e.g. a target above `max_ready`).
    #[error("malformed answer: {0}")]
    Malformed(String),
}
