//! What a failed guest call is reported as: the deadline, the memory cap, or a trap told in the
//! guest's own last words where it left any.

use wasmtime::{Store, Trap};

use crate::convert;
use crate::error::PluginError;
use crate::sandbox::{Limits, State};

/// The [`PluginError`] for `e`, which a call (or instantiation, or `init`) on `store` under
/// `limits` failed with.
pub(crate) fn classify(
    limits: &Limits,
    store: &mut Store<State>,
    e: wasmtime::Error,
) -> PluginError {
    let text = format!("{e:#}");
    if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return PluginError::Deadline(limits.deadline);
    }
    if text.contains("memory") && (text.contains("grow") || text.contains("cap")) {
        return PluginError::Memory(limits.max_memory);
    }
    // What the guest said before it failed beats wasmtime's backtrace: its panic message
    // (logged by the SDK's hook), else the end of what it wrote to stderr (a Python
    // traceback ends with the exception).
    let said = store.data_mut().last_error_log.take();
    let output = store.data().output.text();
    PluginError::Trap(convert::clip(
        &match said {
            Some(msg) => format!("{msg} ({})", root_cause(&e)),
            None if !output.is_empty() => {
                format!("{} ({})", last_lines(&output, 6, 768), root_cause(&e))
            }
            None => text,
        },
        1024,
    ))
}

/// At most the last `lines` lines of `text`, and at most its last `bytes` bytes.
fn last_lines(text: &str, lines: usize, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    match tail.rmatch_indices('\n').nth(lines.saturating_sub(1)) {
        Some((i, _)) => &tail[i + 1..],
        None => tail,
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain()
        .last()
        .map_or_else(|| e.to_string(), |c| c.to_string())
}
