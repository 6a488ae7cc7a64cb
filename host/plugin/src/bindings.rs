//! All generated bindings, in one module: one submodule per world of
//! `wit/warmpool-plugin@0.1.0`. A new WIT version gets its own set here, beside this one.

pub mod sizing {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "sizing-policy",
    });
}

pub mod exhaustion {
    wasmtime::component::bindgen!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "exhaustion-strategy",
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
        // One set of shared types and one `log` host implementation for all worlds.
        with: {
            "warmpool:plugin/types": crate::bindings::sizing::warmpool::plugin::types,
            "warmpool:plugin/log": crate::bindings::sizing::warmpool::plugin::log,
        },
    });
}

pub use sizing::warmpool::plugin::log::Level;
pub use sizing::warmpool::plugin::types;
