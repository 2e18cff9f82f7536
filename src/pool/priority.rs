//! The CPU priority of the threads that do the uploads' bulk work, below
//! the threads that answer status and clear; and the short time slice the
//! threads answering parked status connections ask for ([`quicken`]).
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

/// The time slice a thread that answers status asks for: the scheduler's
/// default here is 1.4 ms.
const SHORT_SLICE_NS: u64 = 100_000;

/// Asks the scheduler for a short time slice for the calling thread, whose
/// turns are short and should come soon: since Linux 6.12 a fair thread's
/// slice is its `sched_attr.sched_runtime`, which any thread may set for
/// itself. It takes no CPU time from other threads; a woken thread with a
/// short slice runs sooner, and is preempted sooner. Under figure 5c's
/// load built by hand (ad hoc, not `scripts/bench`), the waiting threads
/// of parked status connections answered with a p99 of 2.8 to 3.7 ms in
/// three rounds of four with it, 4.1 to 9.9 ms without; later, with each
/// request's log line cheaper, nine rounds could not tell the two apart
/// (docs/performance.md). An older kernel ignores it or refuses it;
/// either is fine.
pub(crate) fn quicken() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority(2) takes no pointer. sched_setattr(2) reads
        // the `sched_attr` given, whose size field says how much; it lives
        // across the call. The nice value is the thread's own, so that
        // nothing but the slice changes.
        unsafe {
            let attr = libc::sched_attr {
                size: std::mem::size_of::<libc::sched_attr>() as u32,
                sched_policy: libc::SCHED_OTHER as u32,
                sched_flags: 0,
                sched_nice: libc::getpriority(libc::PRIO_PROCESS, 0),
                sched_priority: 0,
                sched_runtime: SHORT_SLICE_NS,
                sched_deadline: 0,
                sched_period: 0,
            };
            libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0u32);
        }
    }
}
