//! What the long-running front ends (the HTTP daemon and the FastCGI
//! responder) share: their worker pool, and the stop on SIGINT or SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::forward::Service;
use crate::signal;

/// How many requests a front end serves at once, and how it stops.
#[derive(Debug, Clone)]
pub struct Workers {
    /// Worker threads kept for status, clear and other short requests.
    pub threads: usize,
    /// Uploads in progress at once; one more gets 503.
    pub max_uploads: usize,
    /// A client silent this long is cut off.
    pub idle_timeout: Duration,
    /// How long uploads in progress may take to finish on SIGINT/SIGTERM.
    pub grace: Duration,
}

impl Workers {
    /// Each upload holds a worker for its duration, so there are
    /// `threads + max_uploads` workers: with every upload slot taken,
    /// `threads` workers still answer status at once.
    pub fn count(&self) -> usize {
        self.threads.max(1) + self.max_uploads
    }
}

/// Runs `work` on [`Workers::count`] threads until SIGINT or SIGTERM (or
/// until a worker reports, through the flag it is given, that the listener
/// failed). Then calls `stop_accepting`, gives uploads in progress the
/// grace period, and returns.
pub fn run(
    service: &Arc<Service>,
    workers: &Workers,
    work: impl Fn(&AtomicBool) + Send + Sync + 'static,
    stop_accepting: impl FnOnce(),
) -> Result<(), String> {
    signal::install();
    let failed = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    for n in 0..workers.count() {
        let (work, failed) = (work.clone(), failed.clone());
        thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn(move || work(&failed))
            .map_err(|e| format!("cannot start worker threads: {e}"))?;
    }
    while !signal::stop_requested() && !failed.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
    }
    stop_accepting();
    let deadline = Instant::now() + workers.grace;
    let uploads = || service.app().uploads_in_progress();
    while uploads() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let left = uploads();
    if left > 0 {
        eprintln!(
            "fileupload: stopping with {left} upload(s) unfinished after the grace period; they end as interrupted"
        );
    }
    if failed.load(Ordering::SeqCst) {
        return Err("the listening socket failed".into());
    }
    eprintln!("fileupload: stopped");
    Ok(())
}

/// Whether a worker should keep taking requests.
pub fn running(failed: &AtomicBool) -> bool {
    !signal::stop_requested() && !failed.load(Ordering::SeqCst)
}

/// A worker's report that the listener failed: the server stops, unless it
/// was stopping anyway.
pub fn listener_failed(failed: &AtomicBool, error: &dyn std::fmt::Display) {
    if !signal::stop_requested() {
        eprintln!("fileupload: cannot accept connections: {error}");
        failed.store(true, Ordering::SeqCst);
    }
}
