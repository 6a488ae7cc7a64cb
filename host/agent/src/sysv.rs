//! SysV IPC objects on a kernel that has no `/proc/sysvipc`: gVisor keeps SysV shared memory,
//! message queues and semaphores in each sandbox but shows none of them under `/proc`, and its
//! `*_STAT` calls do not follow Linux's (measured with runsc 20221219: `SHM_STAT` and
//! `MSG_STAT` take an ID where Linux takes an index and answer 0 where Linux answers the ID,
//! `*_INFO` answers 0 as the highest index in use, `SHM_STAT_ANY` is refused). Its `*_INFO`
//! counts are right, though: how many segments, queues and sets exist.
//!
//! So the agent answers from the counts alone. None: the same answer as an empty
//! `/proc/sysvipc/<kind>` (its header line), and the scrub compares as it does on Linux. Any:
//! an error, since objects it cannot name are objects a reuse cannot tell apart from a
//! client's (the container is then never reused). A fresh container has none.

use std::io;

// The `ctl` commands of Linux's UAPI (`linux/shm.h`, `linux/msg.h`, `linux/sem.h`).
const SHM_INFO: i64 = 14;
const MSG_INFO: i64 = 12;
const SEM_INFO: i64 = 19;

/// The objects of `kind` (`shm`, `msg` or `sem`) that exist, as `/proc/sysvipc/<kind>` would
/// list them when there are none; an error when there are some, or the count cannot be read.
pub fn list(kind: &str) -> Result<Vec<String>, String> {
    // Room for any of the answers (`struct shm_info`, `msginfo`, `seminfo`).
    let mut buf = [0u64; 16];
    let p = buf.as_mut_ptr();
    // Raw system calls: a C library may add its own flags to the command (musl's `IPC_64`).
    // SAFETY: `buf` is writable and larger than any structure these commands fill.
    let r = unsafe {
        match kind {
            "shm" => libc::syscall(libc::SYS_shmctl, 0, SHM_INFO, p),
            "msg" => libc::syscall(libc::SYS_msgctl, 0, MSG_INFO, p),
            "sem" => libc::syscall(libc::SYS_semctl, 0, 0, SEM_INFO, p),
            _ => return Err(format!("no SysV IPC kind {kind:?}")),
        }
    };
    if r < 0 {
        return Err(format!("{kind} info: {}", io::Error::last_os_error()));
    }
    // The ints of the answer: `shm_info.used_ids` and `msginfo.msgpool` come first,
    // `seminfo.semusz` is the eighth.
    let ints: Vec<i32> = buf
        .iter()
        .flat_map(|w| [*w as u32 as i32, (*w >> 32) as u32 as i32])
        .collect();
    let count = if kind == "sem" { ints[7] } else { ints[0] };
    if count != 0 {
        return Err(format!(
            "{count} SysV IPC {kind} object(s) exist, and this kernel does not list them \
             (no /proc/sysvipc): a reuse cannot tell them from a client's"
        ));
    }
    Ok(vec![format!("(no /proc/sysvipc/{kind}; none exist)")])
}
