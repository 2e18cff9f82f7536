//! The CPU priority of the threads that do the uploads' bulk work, below
//! the threads that answer status and clear.
//!
//! With 32 uploads at full speed on 2 cores, status requests otherwise
//! queue for the CPU behind dozens of busy receiving, hashing and writing
//! threads (`scripts/bench`, figure 5). Linux nice values are per thread;
//! where the program has an autogroup or a cgroup of its own, as a service
//! normally does, this orders its own threads and takes nothing from it
//! against other processes. A thread cannot raise its priority again
//! without privilege, so the front ends keep lowered threads apart: the
//! upload workers of the driver (`front::driver::UploadWorkers`), lent a
//! connection for the time of an upload.

/// The nice value of a lowered thread. Tried against 19 and against the
/// idle scheduling policy: see `docs/performance.md`.
const LOW_NICE: i32 = 10;

/// Lowers the calling thread to nice [`LOW_NICE`]; a thread already that
/// low stays as it is, so helpers started by a lowered thread (which
/// inherit its nice value) do not sink further.
pub(crate) fn lower() {
    // SAFETY: getpriority(2) and nice(2) take no pointer; on Linux both
    // apply to the calling thread only. An error reads as nice -1 and asks
    // for a little more, which the kernel caps; a refusal leaves the
    // priority as it was, which is fine.
    #[cfg(target_os = "linux")]
    unsafe {
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if now < LOW_NICE {
            libc::nice(LOW_NICE - now);
        }
    }
}
