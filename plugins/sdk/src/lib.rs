//! # warmpool-plugin-sdk
//!
//! Write a warmpool plugin in a few lines. Enable the feature of your world (`sizing`,
//! `exhaustion` or `health`), implement its trait on plain `warmpool_policy` types, and export it:
//!
//! ```ignore
//! use warmpool_plugin_sdk::{Sizing, policy::{PoolSnapshot, SizingDecision}};
//!
//! struct Double;
//! impl Sizing for Double {
//!     type Config = ();
//!     fn configure(_: &[(String, String)]) -> Result<(), String> { Ok(()) }
//!     fn decide(_: &(), s: &PoolSnapshot) -> SizingDecision {
//!         SizingDecision { target: s.min_ready * 2, reason: "twice min_ready".into() }
//!     }
//! }
//! warmpool_plugin_sdk::export_sizing!(Double);
//! ```
//!
//! The SDK converts between the WIT types and `warmpool_policy`'s, keeps your parsed config for
//! the life of the instance, and installs a panic hook that sends the panic message through the
//! `log` import, so the daemon reports *what* went wrong rather than only that the guest trapped.
//!
//! **State across calls.** An instance lives until one of its calls fails (a trap, the
//! deadline, the memory cap: the host then builds a fresh one for the next call) or its file is
//! reloaded. A plugin may keep state between calls in a `static` (a `Mutex` or an atomic), to
//! learn patterns longer than the snapshot's window, but must expect to start over at any call:
//! treat what it kept as a cache, never as the truth. The shipped policies keep none; the
//! snapshot's last 256 acquires are their memory.
//!
//! Where things live: [`bindings`] holds the generated code (one world per feature), [`convert`]
//! the type conversions, the traits and macros are below.

// Lets the generated code name this crate by its path from inside it too.
extern crate self as warmpool_plugin_sdk;

pub mod bindings;
mod convert;

pub use warmpool_policy as policy;
#[doc(hidden)]
pub use wit_bindgen;

use policy::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, Probe, ProbeResult,
    SizingDecision, Verdict,
};

/// A sizing policy: how many containers to keep ready.
pub trait Sizing {
    type Config: Send + Sync + 'static;
    /// Parse the plugin's settings (the scalars under `config:` in the pool's plugin entry).
    fn configure(config: &[(String, String)]) -> Result<Self::Config, String>;
    fn decide(config: &Self::Config, snapshot: &PoolSnapshot) -> SizingDecision;
}

/// An exhaustion strategy: what an acquire does when no container is ready.
pub trait Exhaustion {
    type Config: Send + Sync + 'static;
    fn configure(config: &[(String, String)]) -> Result<Self::Config, String>;
    fn on_exhausted(
        config: &Self::Config,
        request: &ExhaustionRequest,
        snapshot: &PoolSnapshot,
    ) -> ExhaustionAction;
}

/// A health check, in two pure steps: plan the probes, then judge their results.
pub trait Health {
    type Config: Send + Sync + 'static;
    fn configure(config: &[(String, String)]) -> Result<Self::Config, String>;
    fn plan(config: &Self::Config, container: &ContainerInfo) -> Vec<Probe>;
    fn judge(config: &Self::Config, container: &ContainerInfo, results: &[ProbeResult]) -> Verdict;
}

/// Log levels of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Write to the daemon's log, tagged with this plugin.
pub fn log(level: Level, message: &str) {
    bindings::log(level, message);
}

/// Report panics through `log` before the guest traps. Installed by the export macros.
#[doc(hidden)]
pub fn install_panic_hook() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("plugin panicked: {info}"))
        }));
    });
}

/// Export a [`Sizing`] implementation as the component's `sizing-policy` world.
#[cfg(feature = "sizing")]
#[macro_export]
macro_rules! export_sizing {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::sizing as __w;
            static __CONFIG: ::std::sync::OnceLock<<$t as $crate::Sizing>::Config> = ::std::sync::OnceLock::new();
            fn __config() -> &'static <$t as $crate::Sizing>::Config {
                __CONFIG.get_or_init(|| <$t as $crate::Sizing>::configure(&[]).expect("plugin used before init"))
            }
            struct __Export;
            impl __w::Guest for __Export {
                fn init(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::install_panic_hook();
                    let c = <$t as $crate::Sizing>::configure(&config)?;
                    let _ = __CONFIG.set(c);
                    Ok(())
                }
                fn decide(s: __w::PoolSnapshot) -> __w::SizingDecision {
                    let s = __w::from_wit_snapshot(s);
                    __w::to_wit_decision(<$t as $crate::Sizing>::decide(__config(), &s))
                }
            }
            $crate::bindings::sizing::__export_sizing!(__Export with_types_in $crate::bindings::sizing);
        };
    };
}

/// Export an [`Exhaustion`] implementation as the component's `exhaustion-strategy` world.
#[cfg(feature = "exhaustion")]
#[macro_export]
macro_rules! export_exhaustion {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::exhaustion as __w;
            static __CONFIG: ::std::sync::OnceLock<<$t as $crate::Exhaustion>::Config> = ::std::sync::OnceLock::new();
            fn __config() -> &'static <$t as $crate::Exhaustion>::Config {
                __CONFIG.get_or_init(|| <$t as $crate::Exhaustion>::configure(&[]).expect("plugin used before init"))
            }
            struct __Export;
            impl __w::Guest for __Export {
                fn init(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::install_panic_hook();
                    let c = <$t as $crate::Exhaustion>::configure(&config)?;
                    let _ = __CONFIG.set(c);
                    Ok(())
                }
                fn on_exhausted(r: __w::ExhaustionRequest, s: __w::PoolSnapshot) -> __w::ExhaustionAction {
                    let (r, s) = (__w::from_wit_request(r), __w::from_wit_snapshot(s));
                    __w::to_wit_action(<$t as $crate::Exhaustion>::on_exhausted(__config(), &r, &s))
                }
            }
            $crate::bindings::exhaustion::__export_exhaustion!(__Export with_types_in $crate::bindings::exhaustion);
        };
    };
}

/// Export a [`Health`] implementation as the component's `health-check` world.
#[cfg(feature = "health")]
#[macro_export]
macro_rules! export_health {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::health as __w;
            static __CONFIG: ::std::sync::OnceLock<<$t as $crate::Health>::Config> = ::std::sync::OnceLock::new();
            fn __config() -> &'static <$t as $crate::Health>::Config {
                __CONFIG.get_or_init(|| <$t as $crate::Health>::configure(&[]).expect("plugin used before init"))
            }
            struct __Export;
            impl __w::Guest for __Export {
                fn init(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::install_panic_hook();
                    let c = <$t as $crate::Health>::configure(&config)?;
                    let _ = __CONFIG.set(c);
                    Ok(())
                }
                fn plan(c: __w::ContainerInfo) -> ::std::vec::Vec<__w::Probe> {
                    let c = __w::from_wit_container(c);
                    <$t as $crate::Health>::plan(__config(), &c).into_iter().map(__w::to_wit_probe).collect()
                }
                fn judge(c: __w::ContainerInfo, results: ::std::vec::Vec<__w::ProbeResult>) -> __w::Verdict {
                    let c = __w::from_wit_container(c);
                    let r: ::std::vec::Vec<_> = results.into_iter().map(__w::from_wit_probe_result).collect();
                    __w::to_wit_verdict(<$t as $crate::Health>::judge(__config(), &c, &r))
                }
            }
            $crate::bindings::health::__export_health!(__Export with_types_in $crate::bindings::health);
        };
    };
}
