//! All generated bindings, in one module: one submodule per world of
//! `wit/warmpool-plugin@0.1.0`. A new WIT version gets its own set here, beside this one.
//!
//! Every export is called asynchronously, so a call can be abandoned at its wall-clock deadline
//! whatever the guest is doing (computing, or parked in a WASI call such as a sleep); the one
//! import, `log`, is synchronous and bounded.
//!
//! The generated items carry no doc comments of their own (`missing_docs` is allowed in the
//! three world modules only): the WIT they come from is their documentation.

/// Bindings for the `sizing-policy` world; also owns the shared `types` and `log` interfaces.
#[allow(missing_docs)]
pub mod sizing {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "sizing-policy",
        exports: { default: async },
    });
}

/// Bindings for the `exhaustion-strategy` world, sharing `sizing`'s types and `log` import.
#[allow(missing_docs)]
pub mod exhaustion {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "exhaustion-strategy",
        exports: { default: async },
        // One set of shared types and one `log` host implementation for all worlds.
        with: {
            "warmpool:plugin/types": crate::bindings::sizing::warmpool::plugin::types,
            "warmpool:plugin/log": crate::bindings::sizing::warmpool::plugin::log,
        },
    });
}

/// Bindings for the `health-check` world (plan probes, judge results), sharing `sizing`'s types.
#[allow(missing_docs)]
pub mod health {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "health-check",
        exports: { default: async },
        // One set of shared types and one `log` host implementation for all worlds.
        with: {
            "warmpool:plugin/types": crate::bindings::sizing::warmpool::plugin::types,
            "warmpool:plugin/log": crate::bindings::sizing::warmpool::plugin::log,
        },
    });
}

pub use sizing::warmpool::plugin::log::Level;
pub use sizing::warmpool::plugin::types;
