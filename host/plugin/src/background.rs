//! Compiling a plugin is background work: it never competes with serving.
//!
//! A Python plugin is an 18 MB component whose compile takes seconds of CPU. It runs on the
//! plugin runtime's blocking pool and, inside wasmtime, on rayon's threads (functions compile
//! in parallel). All of those threads run at a lower scheduling priority (nice 10), so on a
//! busy host the HTTP API and the pools' loops keep the CPU they need and the compile takes
//! what is left; on an idle host it uses every core. Afterwards the compile's working memory is
//! handed back to the system.

use std::sync::Once;

/// The niceness compile threads run at.
const NICE: libc::c_int = 10;

/// Lower the calling thread's priority (Linux: per thread). Best effort: a host that refuses
/// leaves it as it was.
#[allow(unsafe_code)] // setpriority and gettid through libc
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
    }
}

/// Hand freed heap back to the system. A compile's working memory (several hundred MB for a
/// Python plugin, spread over the allocator's per-thread arenas) would otherwise stay in the
/// process after the compile, and after a replaced plugin is dropped.
#[allow(unsafe_code)] // malloc_trim through libc
pub(crate) fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Configure rayon's global pool (which wasmtime compiles on) once: named threads at the
/// lower priority. If the embedding program configured rayon first, its pool is used as is.
pub(crate) fn init_compile_threads() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("wasm-compile-{i}"))
            .start_handler(|_| lower_priority())
            .build_global();
    });
}
