//! A slot's counters, and the rule that benches a plugin that keeps failing.

use std::time::SystemTime;

use crate::error::PluginError;

/// Calls a plugin's failure share is judged over. A plugin that fails half of them is benched
/// as one failing `bench_after` times in a row is: a guest that goes bad in service answers
/// each fresh instance's first call, so its failures never run in a row, yet it costs a
/// deadline every other decision (the policy lab's simulation of such a guest found it).
pub(crate) const WINDOW: u32 = 20;

/// What a slot has seen: reloads, calls and their outcomes, and whether it is benched.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) reloads: u64,
    pub(crate) last_reload_at: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) consecutive: u32,
    /// The outcomes of the last [`WINDOW`] calls, newest in bit 0 (1: failed).
    recent: u64,
    pub(crate) fallbacks: u64,
    /// Set when benched: the sha256 of the file that failed; cleared when the content changes.
    pub(crate) benched_sha: Option<String>,
}

impl Counters {
    /// A new version was swapped in: its record starts clean, and it is not benched.
    pub(crate) fn swapped_in(&mut self) {
        self.reloads += 1;
        self.last_reload_at = Some(SystemTime::now());
        self.last_error = None;
        self.consecutive = 0;
        self.recent = 0;
        self.benched_sha = None;
    }

    /// A call on the serving version answered.
    pub(crate) fn succeeded(&mut self) {
        self.calls += 1;
        self.recent <<= 1;
        self.consecutive = 0;
    }

    /// A call on the serving version (content `sha`) failed with `e`, and the built-in
    /// answered instead. When this failure benches the plugin (`bench_after` in a row, or half
    /// the window and never fewer than `bench_after`: a flapping plugin is as broken as a dead
    /// one), it is benched and the failures in the window are returned.
    pub(crate) fn failed(&mut self, e: &PluginError, bench_after: u32, sha: &str) -> Option<u32> {
        self.calls += 1;
        self.recent = (self.recent << 1) | 1;
        self.failures += 1;
        self.consecutive += 1;
        self.fallbacks += 1;
        self.last_error = Some(e.to_string());
        let in_window = (self.recent & ((1 << WINDOW) - 1)).count_ones();
        let flapping = in_window >= (WINDOW / 2).max(bench_after);
        if self.consecutive >= bench_after || flapping {
            self.benched_sha = Some(sha.to_string());
            return Some(in_window);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> PluginError {
        PluginError::Malformed("test".into())
    }

    #[test]
    fn benched_after_failures_in_a_row() {
        let mut c = Counters::default();
        for _ in 0..4 {
            assert_eq!(c.failed(&failure(), 5, "abc"), None);
        }
        assert_eq!(c.failed(&failure(), 5, "abc"), Some(5));
        assert_eq!(c.benched_sha.as_deref(), Some("abc"));
        assert_eq!(
            (c.calls, c.failures, c.fallbacks, c.consecutive),
            (5, 5, 5, 5)
        );
        c.swapped_in();
        assert_eq!((c.benched_sha, c.consecutive, c.reloads), (None, 0, 1));
    }

    #[test]
    fn benched_when_half_the_window_fails() {
        let mut c = Counters::default();
        // Failing every other call never runs five in a row, yet costs a deadline per two.
        for _ in 0..9 {
            c.succeeded();
            assert_eq!(c.failed(&failure(), 5, "abc"), None);
        }
        c.succeeded();
        assert_eq!(c.failed(&failure(), 5, "abc"), Some(10));
        assert_eq!(c.consecutive, 1);
    }
}
