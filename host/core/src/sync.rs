//! The one lock helper every module of the core uses. A leaf module, so that holding a mutex
//! never means depending on the manager.

use std::sync::{Mutex, MutexGuard};

/// Lock a std mutex, entering it even if a panicking thread poisoned it: every structure the
/// core guards this way is left consistent between statements, and the pool state checks its
/// own invariants.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
