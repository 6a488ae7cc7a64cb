//! All generated bindings, in one module: one submodule per world of
//! `wit/warmpool-plugin@0.1.0`. A new WIT version gets its own set here, beside this one.
//!
//! Every export is called asynchronously, so a call can be abandoned at its wall-clock deadline
//! whatever the guest is doing (computing, or parked in a WASI call such as a sleep); the one
//! import, `log`, is synchronous and bounded.

pub mod sizing {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "sizing-policy",
        exports: { default: async },
    });
}

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
