//! The generated WIT bindings, one world per feature: a component implements exactly one world,
//! and generating the others would add their exports to its type section.

#[cfg(feature = "sizing")]
pub mod sizing {
    wit_bindgen::generate!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "sizing-policy",
        pub_export_macro: true,
        export_macro_name: "__export_sizing",
        default_bindings_module: "warmpool_plugin_sdk::bindings::sizing",
        runtime_path: "warmpool_plugin_sdk::wit_bindgen::rt",
    });
    pub use warmpool::plugin::types::*;
    crate::convert::conversions!();
}

#[cfg(feature = "exhaustion")]
pub mod exhaustion {
    wit_bindgen::generate!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "exhaustion-strategy",
        pub_export_macro: true,
        export_macro_name: "__export_exhaustion",
        default_bindings_module: "warmpool_plugin_sdk::bindings::exhaustion",
        runtime_path: "warmpool_plugin_sdk::wit_bindgen::rt",
    });
    pub use warmpool::plugin::types::*;
    crate::convert::conversions!();
}

#[cfg(feature = "health")]
// The generated import of the host's `exec` takes one argument per WIT parameter.
#[allow(clippy::too_many_arguments)]
pub mod health {
    wit_bindgen::generate!({
        path: "../../wit/warmpool-plugin@0.1.0",
        world: "health-check",
        pub_export_macro: true,
        export_macro_name: "__export_health",
        default_bindings_module: "warmpool_plugin_sdk::bindings::health",
        runtime_path: "warmpool_plugin_sdk::wit_bindgen::rt",
    });
    pub use warmpool::plugin::types::*;
    crate::convert::conversions!();
}

/// Send a log line through the enabled world's `log` import.
pub fn log(level: crate::Level, message: &str) {
    macro_rules! via {
        ($w:ident) => {{
            use $w::warmpool::plugin::log::{Level as L, log};
            let l = match level {
                crate::Level::Debug => L::Debug,
                crate::Level::Info => L::Info,
                crate::Level::Warn => L::Warn,
                crate::Level::Error => L::Error,
            };
            log(l, message);
        }};
    }
    #[cfg(feature = "sizing")]
    via!(sizing);
    #[cfg(all(feature = "exhaustion", not(feature = "sizing")))]
    via!(exhaustion);
    #[cfg(all(
        feature = "health",
        not(any(feature = "sizing", feature = "exhaustion"))
    ))]
    via!(health);
    #[cfg(not(any(feature = "sizing", feature = "exhaustion", feature = "health")))]
    let _ = (level, message);
}
