//! What the long-running front ends (the HTTP daemon and the FastCGI
//! responder) share: their worker pool, and the stop on SIGINT or SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::front::signal;
use crate::handoff::Service;

/// How many uploads a front end takes at once, and how it stops.
#[derive(Debug, Clone)]
pub struct Workers {
    /// Uploads in progress at once; one more gets 503.
    pub max_uploads: usize,
    /// A client silent this long is cut off.
    pub idle_timeout: Duration,
    /// How long uploads in progress may take to finish on SIGINT/SIGTERM.
    pub grace: Duration,
}

/// Runs `work` on `threads` threads until SIGINT or SIGTERM (or until a
/// worker reports, through the flag it is given, that the listener
/// failed). Then calls `stop_accepting`, gives uploads in progress the
/// grace period, and returns.
pub fn run(
    service: &Arc<Service>,
    workers: &Workers,
    threads: usize,
    work: impl Fn(&AtomicBool) + Send + Sync + 'static,
    stop_accepting: impl FnOnce(),
) -> Result<(), String> {
    signal::install();
    let failed = Arc::new(AtomicBool::new(false));
    let work: Work = Arc::new(work);
    let retired = Arc::new(AtomicUsize::new(0));
    for _ in 0..threads {
        start_worker(&work, &failed, &retired)
            .map_err(|e| format!("cannot start worker threads: {e}"))?;
    }
    while !signal::stop_requested() && !failed.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
        // Started from here, at normal priority: a thread inherits the
        // priority of the thread that starts it.
        for _ in 0..retired.swap(0, Ordering::SeqCst) {
            // Out of threads: the server goes on with one worker less, as
            // it would have with the retired one lowered.
            let _ = start_worker(&work, &failed, &retired);
        }
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

/// Threads kept for uploads, at a lower priority (nice 10) than the
/// threads that answer status and clear. On 2 cores with 32 uploads at
/// full speed, a status request otherwise waits for the CPU behind the
/// uploads' receiving, hashing and writing threads; `scripts/bench`
/// (figure 5) measures the difference. A thread cannot raise its priority
/// again without privilege, so these are threads of their own, lowered
/// once, and an upload is handed to one instead of being answered on the
/// thread that read its head.
pub struct UploadWorkers<T> {
    queue: SyncSender<T>,
    /// Workers waiting for an upload.
    idle: AtomicUsize,
}

impl<T: Send + 'static> UploadWorkers<T> {
    /// Starts `count` workers, each answering the uploads handed to it
    /// with `answer`.
    pub fn start(
        count: usize,
        answer: impl Fn(T) + Send + Sync + 'static,
    ) -> Result<Arc<UploadWorkers<T>>, String> {
        let (queue, waiting) = sync_channel(count.max(1));
        let workers = Arc::new(UploadWorkers {
            queue,
            idle: AtomicUsize::new(0),
        });
        let waiting = Arc::new(Mutex::new(waiting));
        let answer = Arc::new(answer);
        for n in 0..count {
            let (workers, waiting, answer) = (workers.clone(), waiting.clone(), answer.clone());
            thread::Builder::new()
                .name(format!("upload-{n}"))
                .spawn(move || workers.work(&waiting, &*answer))
                .map_err(|e| format!("cannot start upload threads: {e}"))?;
        }
        Ok(workers)
    }

    /// Gives an upload to a waiting worker, or gives it back when none
    /// waits. An upload never queues: the caller answers it where it is,
    /// and the core answers 503 when every upload slot is taken.
    pub fn hand_over(&self, upload: T) -> Option<T> {
        let taken = self
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if taken.is_err() {
            return Some(upload);
        }
        match self.queue.try_send(upload) {
            Ok(()) => None,
            Err(TrySendError::Full(upload) | TrySendError::Disconnected(upload)) => {
                self.idle.fetch_add(1, Ordering::SeqCst);
                Some(upload)
            }
        }
    }

    fn work(&self, waiting: &Mutex<Receiver<T>>, answer: &dyn Fn(T)) {
        crate::pool::priority::lower();
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            let next = match waiting.lock() {
                Ok(waiting) => waiting.recv(),
                Err(_) => return,
            };
            match next {
                Ok(upload) => answer(upload),
                // Every sender is gone: the server is stopping.
                Err(_) => return,
            }
        }
    }
}

type Work = Arc<dyn Fn(&AtomicBool) + Send + Sync>;

/// Starts a thread running `work`. A worker that lowered its priority for
/// an upload (see [`crate::pool::priority::lower`]) cannot raise it again
/// without privilege: its `work` returns once the upload's connection is
/// done, and [`run`] starts a fresh worker at normal priority in its place.
fn start_worker(
    work: &Work,
    failed: &Arc<AtomicBool>,
    retired: &Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let (work, failed, retired) = (work.clone(), failed.clone(), retired.clone());
    thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            work(&failed);
            if crate::pool::priority::lowered() {
                retired.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map(|_| ())
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
