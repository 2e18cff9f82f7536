//! The one blocking connection driver of the long-running front ends (the
//! HTTP daemon and the FastCGI responder): it accepts connections, gives
//! each a thread of its own up to a cap, evicts the oldest idle one at the
//! cap, runs uploads on workers of lower priority, sweeps expired tus
//! uploads from the pool, and stops gracefully on SIGINT or SIGTERM. A front end only says how to serve one connection
//! ([`Front`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::listen::{Listener, accept_error_is_transient};
use super::signal;
use crate::handoff::Service;
use crate::pool::Pool;

/// How many a front end serves at once, and how it stops.
#[derive(Debug, Clone)]
pub struct Workers {
    /// Uploads in progress at once; one more gets 503.
    pub max_uploads: usize,
    /// Connections open at once: at the cap the oldest idle one is closed
    /// to admit a new one.
    pub max_connections: usize,
    /// A peer silent this long is cut off; a request head must arrive
    /// whole within it.
    pub idle_timeout: Duration,
    /// How long uploads in progress may take to finish on SIGINT/SIGTERM.
    pub grace: Duration,
}

/// A protocol served over accepted connections.
pub trait Front: Send + Sync + 'static {
    /// Serves one connection until it ends, on its own thread. `tracker`
    /// is told when the connection waits for a request (it may then be
    /// evicted) and when it works on one.
    fn serve(&self, driver: &Arc<Driver>, socket: Socket, tracker: Tracker);

    /// What a connection over the cap, with no idle one to evict, is told
    /// before it is closed.
    fn refusal(&self) -> Vec<u8>;

    /// Starts what the front end keeps running beside its connections,
    /// before the first is accepted.
    fn start(&self, _driver: &Arc<Driver>) {}

    /// Finishes what the front end keeps running beside its connections,
    /// once the server has stopped serving.
    fn stop(&self) {}
}

/// What every connection shares.
pub struct Driver {
    /// The core and the application.
    pub service: Arc<Service>,
    /// Workers for uploads.
    pub uploads: UploadWorkers,
    /// The idle timeout.
    pub idle_timeout: Duration,
    connections: Arc<Registry>,
}

/// Serves `front` on `listener` until SIGINT or SIGTERM (or until the
/// listener fails). Then stops accepting, gives uploads in progress the
/// grace period, and returns.
pub fn run(
    listener: Listener,
    service: Service,
    workers: &Workers,
    front: impl Front,
) -> Result<(), String> {
    signal::install();
    let driver = Arc::new(Driver {
        service: Arc::new(service),
        uploads: UploadWorkers::start(workers.max_uploads)?,
        idle_timeout: workers.idle_timeout,
        connections: Arc::new(Registry::new(workers.max_connections.max(1))),
    });
    let sweeper = Sweeper::start(driver.service.app().pool().clone())?;
    let listener = Arc::new(listener);
    let failed = Arc::new(AtomicBool::new(false));
    front.start(&driver);
    let front = Arc::new(front);
    {
        let (driver, listener, failed, front) = (
            driver.clone(),
            listener.clone(),
            failed.clone(),
            front.clone(),
        );
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept(&driver, &listener, &failed, front))
            .map_err(|e| format!("cannot start the accepting thread: {e}"))?;
    }
    while !signal::stop_requested() && !failed.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
    }
    listener.stop();
    let deadline = Instant::now() + workers.grace;
    let uploads = || driver.service.app().uploads_in_progress();
    while uploads() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    drop(sweeper);
    let left = uploads();
    if left > 0 {
        crate::log::say!(
            "stopping with {left} upload(s) unfinished after the grace period; they end as interrupted"
        );
    }
    front.stop();
    if failed.load(Ordering::SeqCst) {
        return Err("the listening socket failed".into());
    }
    crate::log::say!("stopped");
    Ok(())
}

/// The sweep of expired tus uploads ([`Pool::expire`]) on a thread of its
/// own, every tenth of `--expire-after` (at least every second, at most
/// every ten minutes), so that an upload its client abandoned does not
/// wait for `gc --unfinished`. Dropped, it stops and is waited for (a
/// sweep under way ends first).
struct Sweeper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    fn start(pool: Pool) -> Result<Sweeper, String> {
        let every =
            (pool.expire_after() / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("sweep".into())
            .spawn(move || {
                // Told to stop, or the sender gone: either ends the wait.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    match pool.expire() {
                        Ok(removed) => {
                            for id in removed {
                                crate::log::say!("removed expired upload {}", id.as_str());
                            }
                        }
                        Err(e) => {
                            crate::log::say!("cannot sweep expired uploads: {}", e.message());
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the sweeping thread: {e}"))?;
        Ok(Sweeper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept(driver: &Arc<Driver>, listener: &Listener, failed: &AtomicBool, front: Arc<impl Front>) {
    loop {
        let socket = match listener.accept(driver.idle_timeout) {
            Ok(socket) => socket,
            Err(_) if signal::stop_requested() => return,
            Err(e) => match accept_error_is_transient(&e) {
                Some(pause) => {
                    if !pause.is_zero() {
                        thread::sleep(pause);
                    }
                    continue;
                }
                None => {
                    crate::log::say!("cannot accept connections: {e}");
                    failed.store(true, Ordering::SeqCst);
                    return;
                }
            },
        };
        let Some(tracker) = driver.connections.admit(&socket) else {
            refuse(&socket, &front.refusal());
            continue;
        };
        let (driver, front) = (driver.clone(), front.clone());
        let started = thread::Builder::new()
            .name("connection".into())
            .spawn(move || front.serve(&driver, socket, tracker));
        if let Err(e) = started {
            // The socket went with the closure: the peer sees it closed.
            crate::log::say!("connection dropped: cannot start its thread: {e}");
        }
    }
}

/// Tells a connection over the cap so, without waiting on it: the
/// accepting thread must never block on one peer.
fn refuse(socket: &Socket, answer: &[u8]) {
    if socket.set_nonblocking(true).is_ok() {
        let _ = socket.send(answer);
    }
}

/// The open connections, for the cap and the eviction.
struct Registry {
    max: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    entries: HashMap<u64, Entry>,
}

struct Entry {
    /// Since when it waits for a request head; `None` while it works on one.
    waiting: Option<Instant>,
    /// A handle to shut it down with when it is evicted.
    socket: Option<Socket>,
}

impl Registry {
    fn new(max: usize) -> Registry {
        Registry {
            max,
            open: Mutex::new(Open::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // A connection thread cannot panic while holding it; were one to,
        // the map is still consistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection, evicting the one idle longest when at the cap;
    /// `None` when every open connection is working on a request.
    fn admit(self: &Arc<Registry>, socket: &Socket) -> Option<Tracker> {
        let mut open = self.lock();
        if open.entries.len() >= self.max {
            let oldest = open
                .entries
                .iter()
                .filter_map(|(id, e)| e.waiting.map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(evicted) = open.entries.remove(&oldest)
                && let Some(socket) = evicted.socket
            {
                // Its thread wakes with an error and ends the connection.
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
        let id = open.next;
        open.next += 1;
        open.entries.insert(
            id,
            Entry {
                waiting: Some(Instant::now()),
                socket: socket.try_clone().ok(),
            },
        );
        drop(open);
        Some(Tracker {
            id,
            registry: self.clone(),
        })
    }
}

/// One admitted connection's place in the registry: given back when
/// dropped.
pub struct Tracker {
    id: u64,
    registry: Arc<Registry>,
}

impl Tracker {
    /// The connection waits for a request head: it may be evicted.
    pub fn waiting(&self) {
        if let Some(e) = self.registry.lock().entries.get_mut(&self.id) {
            e.waiting = Some(Instant::now());
        }
    }

    /// The connection works on a request: it is not evicted.
    pub fn busy(&self) {
        if let Some(e) = self.registry.lock().entries.get_mut(&self.id) {
            e.waiting = None;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.registry.lock().entries.remove(&self.id);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads kept for uploads, at a lower priority (nice 10) than the
/// threads that answer status and clear. On 2 cores with 32 uploads at
/// full speed, a status request otherwise waits for the CPU behind the
/// uploads' receiving, hashing and writing threads; `scripts/bench`
/// (figure 5) measures the difference. A thread cannot raise its priority
/// again without privilege, so these are threads of their own, lowered
/// once, and a connection is lent to one for the time of an upload.
pub struct UploadWorkers {
    queue: Option<SyncSender<Job>>,
    /// Workers waiting for an upload.
    idle: Arc<AtomicUsize>,
}

impl UploadWorkers {
    /// Starts `count` workers.
    pub fn start(count: usize) -> Result<UploadWorkers, String> {
        let (queue, waiting) = sync_channel::<Job>(count.max(1));
        let idle = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..count {
            let (idle, waiting) = (idle.clone(), waiting.clone());
            thread::Builder::new()
                .name(format!("upload-{n}"))
                .spawn(move || work(&idle, &waiting))
                .map_err(|e| format!("cannot start upload threads: {e}"))?;
        }
        Ok(UploadWorkers {
            queue: Some(queue),
            idle,
        })
    }

    /// No workers: every upload runs where it is asked (tests, CGI).
    pub fn none() -> UploadWorkers {
        UploadWorkers {
            queue: None,
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `work` on `conn` on a waiting worker and gives the connection
    /// back with the result; runs it here when no worker waits (every
    /// upload slot is then taken, and the core answers 503 at once).
    /// `None` only if the worker was lost with the connection.
    pub fn run<C, R>(
        &self,
        mut conn: C,
        work: impl FnOnce(&mut C) -> R + Send + 'static,
    ) -> Option<(C, R)>
    where
        C: Send + 'static,
        R: Send + 'static,
    {
        let Some(queue) = &self.queue else {
            let r = work(&mut conn);
            return Some((conn, r));
        };
        if self
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            let r = work(&mut conn);
            return Some((conn, r));
        }
        let (back, returned) = sync_channel(1);
        let job: Job = Box::new(move || {
            let r = work(&mut conn);
            let _ = back.send((conn, r));
        });
        match queue.try_send(job) {
            Ok(()) => returned.recv().ok(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                // The job, connection and all, came back inside the error
                // and is dropped with it: this cannot happen while a worker
                // was counted idle, since each takes one job at a time.
                self.idle.fetch_add(1, Ordering::SeqCst);
                None
            }
        }
    }
}

fn work(idle: &AtomicUsize, waiting: &Mutex<Receiver<Job>>) {
    crate::pool::priority::lower();
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let next = match waiting.lock() {
            Ok(waiting) => waiting.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            // Every sender is gone: the server is stopping.
            Err(_) => return,
        }
    }
}
