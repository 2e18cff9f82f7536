//! SIGINT and SIGTERM, turned into a flag the daemon polls (and the CGI
//! program checks).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing safe to do in a signal handler.
    STOP.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`stop_requested`].
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Routes SIGTERM to [`stop_requested`], without restarting the system
/// call it interrupts. For the CGI program: a web server ends the process
/// of a request whose client went away with SIGTERM (Apache, with SIGKILL
/// 3 s later), while it is blocked reading the body. The read must then
/// fail, so that what was received is saved before the process exits: a
/// resumable upload keeps those bytes, and its client need not send them
/// again.
pub fn install_interrupting() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: an all-zero sigaction is a valid value (no flags, so no
    // SA_RESTART; an empty mask is set below); the handler only stores to
    // an atomic; the pointers are to locals that outlive the calls.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}
