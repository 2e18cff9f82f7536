//! Status clients' connections, parked between requests.
//!
//! A progress bar asks for its upload's status several times a second on
//! a kept connection. With a thread per connection, every such request
//! wakes that connection's thread. A connection whose last request was a
//! status request, with nothing more buffered, waits here instead: a few
//! threads (one per CPU) wait on all of them with `epoll`, and answer on
//! the spot a status request that arrives whole in one read. Anything else
//! goes back to a thread of the connection's own, which goes on as if it
//! had never left: another route (an upload, a clear), a head that arrives
//! in pieces or is malformed, pipelined requests, an answer the socket
//! cannot take at once. A parked connection stays evictable at the
//! connection cap, and one silent for the idle timeout is closed, as its
//! thread would have closed it.
//!
//! Not used when the pool is shared (a network filesystem): a status read
//! from there may wait on other hosts, and these threads must never wait
//! on anything but their sockets.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::fd::OwnedFd;

use super::codec::{Framing, HeadScan};
use super::{Conn, Next, encode_whole, serve_conn};
use crate::app::{Route, route_request};
use crate::front::driver::{Driver, Tracker};
use crate::log::Held;

/// Events taken from the kernel at a time.
const EVENTS: usize = 256;
/// The longest wait for events: the idle timeout may be any length (days),
/// which `epoll_wait` cannot take.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// The pause after a failed wait, so that a failure that lasts does not
/// spin.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Where connections are parked: the waiting threads, started with the
/// server; none when they could not be started (each connection then
/// keeps its thread) or when the pool is shared.
#[derive(Default)]
pub(super) struct Lot(OnceLock<Option<Parking>>);

impl Lot {
    /// Starts the waiting threads, once.
    pub(super) fn start(self: &Arc<Lot>, driver: &Arc<Driver>) {
        self.0.get_or_init(|| {
            if driver.service.app().pool().is_shared() {
                return None;
            }
            Parking::start(self, driver)
                .map_err(|e| crate::log::say!("status connections keep their threads: {e}"))
                .ok()
        });
    }

    /// Parks `conn`, whose buffer is empty; gives it back when it cannot
    /// be parked, and the caller's thread goes on serving it.
    pub(super) fn park(&self, conn: Conn, tracker: Tracker) -> Result<(), (Conn, Tracker)> {
        match self.0.get() {
            Some(Some(parking)) => parking.park(conn, tracker),
            _ => Err((conn, tracker)),
        }
    }

    /// Writes the log lines the waiting threads hold, and has them write
    /// each line at once from now on: the server stops, and the process
    /// may end any moment.
    pub(super) fn stop(&self) {
        if let Some(Some(parking)) = self.0.get() {
            for poller in &parking.pollers {
                poller.held().stop();
            }
        }
    }
}

/// The waiting threads, one per CPU: the scheduler shares a busy CPU out
/// between sessions CPU by CPU, and a single thread would get one CPU's
/// share for every status answer of the process.
struct Parking {
    pollers: Vec<Arc<Poller>>,
    /// Whose turn it is to take the next connection.
    turn: AtomicUsize,
}

/// One waiting thread's connections.
struct Poller {
    epoll: OwnedFd,
    parked: Mutex<HashMap<u64, Parked>>,
    next: AtomicU64,
    /// The log lines of the requests it answered, written a few at a
    /// time; only its thread adds to them.
    held: Mutex<Held>,
}

/// A connection waiting for its next request.
struct Parked {
    conn: Conn,
    tracker: Tracker,
    /// Since when it is silent.
    since: Instant,
}

impl Parking {
    /// Starts the waiting threads.
    fn start(lot: &Arc<Lot>, driver: &Arc<Driver>) -> io::Result<Parking> {
        let count = thread::available_parallelism().map_or(1, |n| n.get());
        let mut pollers = Vec::with_capacity(count);
        for _ in 0..count {
            pollers.push(Arc::new(Poller {
                epoll: epoll::create(CreateFlags::CLOEXEC)?,
                parked: Mutex::new(HashMap::new()),
                next: AtomicU64::new(0),
                held: Mutex::new(Held::default()),
            }));
        }
        for poller in &pollers {
            let (poller, lot, driver) = (poller.clone(), lot.clone(), driver.clone());
            thread::Builder::new()
                .name("parking".into())
                .spawn(move || {
                    crate::pool::priority::quicken();
                    poller.run(&lot, &driver)
                })?;
        }
        Ok(Parking {
            pollers,
            turn: AtomicUsize::new(0),
        })
    }

    /// Parks `conn` with the next waiting thread.
    fn park(&self, conn: Conn, tracker: Tracker) -> Result<(), (Conn, Tracker)> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        match self.pollers.get(turn % self.pollers.len().max(1)) {
            Some(poller) => poller.park(conn, tracker),
            None => Err((conn, tracker)),
        }
    }
}

impl Poller {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Parked>> {
        // Nothing panics while holding it; the map stays whole if it did.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn park(&self, conn: Conn, tracker: Tracker) -> Result<(), (Conn, Tracker)> {
        if conn.stream.set_nonblocking(true).is_err() {
            return Err((conn, tracker));
        }
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        tracker.waiting();
        // Registered under the map's lock: the waiting thread looks an
        // event's key up under it, so it never misses a connection that
        // is ready at once.
        let mut parked = self.lock();
        let watched = epoll::add(
            &self.epoll,
            &conn.stream,
            EventData::new_u64(key),
            EventFlags::IN | EventFlags::RDHUP,
        );
        if watched.is_err() {
            drop(parked);
            let _ = conn.stream.set_nonblocking(false);
            return Err((conn, tracker));
        }
        parked.insert(
            key,
            Parked {
                conn,
                tracker,
                since: Instant::now(),
            },
        );
        Ok(())
    }

    /// The waiting thread: answers what arrives, hands on the rest, and
    /// closes connections silent for the idle timeout.
    fn run(&self, lot: &Arc<Lot>, driver: &Arc<Driver>) {
        let idle = driver.idle_timeout;
        let mut events = Vec::with_capacity(EVENTS);
        let mut sweep = later(Instant::now(), idle);
        // When the log lines held must be written, if any are.
        let mut due: Option<Instant> = None;
        loop {
            // Woken in time to write them, too.
            let until = due.map_or(sweep, |due| due.min(sweep));
            let left = until
                .saturating_duration_since(Instant::now())
                .min(LONGEST_WAIT);
            events.clear();
            match epoll::wait(
                &self.epoll,
                spare_capacity(&mut events),
                Some(&timespec(left)),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // Cannot happen with a valid descriptor, buffer and
                    // timeout; were it to, the parked connections go back
                    // to threads, and those parked next are waited on
                    // again after a pause.
                    crate::log::say!("parked status connections handed back: {e}");
                    let all: Vec<Parked> = self.lock().drain().map(|(_, p)| p).collect();
                    for p in all {
                        self.hand_on(lot, driver, p, Vec::new(), Next::Keep);
                    }
                    thread::sleep(AFTER_FAILURE);
                    continue;
                }
            }
            for event in &events {
                let key = event.data.u64();
                let taken = self.lock().remove(&key);
                if let Some(parked) = taken {
                    self.serve(lot, driver, key, parked);
                }
            }
            let now = Instant::now();
            due = {
                let mut held = self.held();
                if held.due().is_some_and(|due| now >= due) {
                    held.write();
                }
                held.due()
            };
            if now >= sweep {
                sweep = self.close_silent(idle);
            }
        }
    }

    /// Serves the request that woke a parked connection.
    fn serve(&self, lot: &Arc<Lot>, driver: &Arc<Driver>, key: u64, mut parked: Parked) {
        match parked.conn.fill() {
            // The client closed, or the connection was reset or evicted.
            Ok(0) => return self.close(parked),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.lock().insert(key, parked);
                return;
            }
            Err(_) => return self.close(parked),
        }
        // One status request, whole, and nothing after it: answered here.
        // Anything else is for a thread, which reads the head again from
        // the buffer.
        let whole = match HeadScan::default().scan(parked.conn.buffered()) {
            Ok(Some((head, used))) if used == parked.conn.buffered().len() => Some(head),
            _ => None,
        };
        let Some(head) = whole else {
            return self.hand_on(lot, driver, parked, Vec::new(), Next::Keep);
        };
        let route = route_request(&head.method, &head.path, &head.query, &head.headers);
        if route != Route::Status || head.framing != Framing::Length(0) || head.expect_continue {
            return self.hand_on(lot, driver, parked, Vec::new(), Next::Keep);
        }
        parked.conn.start = parked.conn.end;
        parked.tracker.busy();
        let (response, head_only, next, line) = parked.conn.answer(&driver.service, head, route);
        self.held().push(line);
        let mut out = encode_whole(&response, head_only, next != Next::Keep);
        match (send_some(&parked.conn, &out), next) {
            (Some(n), Next::Keep) if n == out.len() => {
                parked.tracker.waiting();
                parked.since = Instant::now();
                // Still registered under its key: only the entry was taken.
                self.lock().insert(key, parked);
            }
            (Some(n), Next::Close) if n == out.len() => self.close(parked),
            (Some(n), next) => self.hand_on(lot, driver, parked, out.split_off(n), next),
            (None, _) => self.close(parked),
        }
    }

    /// Ends a connection. It leaves the interest list first: the eviction
    /// handle in the registry shares its open file, which closing this
    /// descriptor alone would not take out.
    fn close(&self, parked: Parked) {
        let _ = epoll::delete(&self.epoll, &parked.conn.stream);
        drop(parked);
    }

    /// Gives `parked` back to a thread of its own, which first sends
    /// `pending` (the rest of an answer), then goes on as `next` says.
    fn hand_on(
        &self,
        lot: &Arc<Lot>,
        driver: &Arc<Driver>,
        parked: Parked,
        pending: Vec<u8>,
        next: Next,
    ) {
        let _ = epoll::delete(&self.epoll, &parked.conn.stream);
        let Parked {
            mut conn, tracker, ..
        } = parked;
        if conn.stream.set_nonblocking(false).is_err() {
            return;
        }
        let (driver, lot) = (driver.clone(), lot.clone());
        let started = thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                if conn.stream.write_all(&pending).is_err() {
                    return;
                }
                match next {
                    Next::Keep => serve_conn(&driver, &lot, conn, tracker),
                    Next::Close => {}
                    Next::Linger => conn.linger(),
                }
            });
        if let Err(e) = started {
            // The connection went with the closure: the peer sees it closed.
            crate::log::say!("connection dropped: cannot start its thread: {e}");
        }
    }

    /// Closes the connections silent for `idle`; when to look again.
    fn close_silent(&self, idle: Duration) -> Instant {
        let now = Instant::now();
        let mut map = self.lock();
        let silent: Vec<u64> = map
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= idle)
            .map(|(key, _)| *key)
            .collect();
        let gone: Vec<Parked> = silent.iter().filter_map(|k| map.remove(k)).collect();
        // The oldest left is the first to fall silent for long enough.
        let next = map
            .values()
            .map(|p| later(p.since, idle))
            .min()
            .unwrap_or_else(|| later(now, idle));
        drop(map);
        for parked in gone {
            self.close(parked);
        }
        next
    }
}

/// Writes what the socket takes now, without waiting: the count sent, or
/// `None` when the connection failed.
fn send_some(conn: &Conn, out: &[u8]) -> Option<usize> {
    let mut sent = 0;
    while sent < out.len() {
        match (&conn.stream).write(&out[sent..]) {
            Ok(0) => return None,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return None,
        }
    }
    Some(sent)
}

/// `at + wait`, or a year after `at` when that is beyond what an
/// `Instant` holds (an idle timeout of millions of days).
fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(Duration::from_secs(365 * 86400)))
        .unwrap_or(at)
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
