//! fileupload patch: a bound on open connections.
//!
//! Upstream spawns a thread per connection without limit, so a flood of
//! idle connections grows threads and descriptors until accept fails. Here
//! at most `max` connections are open. When a new one comes at the limit,
//! the oldest connection that is only waiting for a request head (idle
//! between requests, or still sending its head) is shut down to make room:
//! a flood of idle connections therefore never keeps a real request out.
//! Only when every open connection is busy with a request is the new one
//! refused (503).

use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::connection::Connection;

pub(crate) struct Connections {
    max: usize,
    open: Mutex<Open>,
}

struct Open {
    next_id: u64,
    // Oldest first.
    entries: Vec<Entry>,
}

struct Entry {
    id: u64,
    closer: Connection,
    waiting: Arc<AtomicBool>,
}

/// A connection's place among the open ones; gives it back when dropped.
pub(crate) struct Ticket {
    connections: Arc<Connections>,
    id: u64,
    waiting: Arc<AtomicBool>,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            open: Mutex::new(Open {
                next_id: 0,
                entries: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The list stays consistent whatever panicked while holding it.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection, given a second handle on its socket (used only
    /// to shut it down), evicting an idle one at the limit; `None` when
    /// every open connection is busy.
    pub(crate) fn admit(self: &Arc<Self>, closer: Connection) -> Option<Ticket> {
        let mut open = self.lock();
        if open.entries.len() >= self.max {
            let idle = open
                .entries
                .iter()
                .position(|e| e.waiting.load(Ordering::SeqCst))?;
            let evicted = open.entries.remove(idle);
            // Its thread sees end of input and lets the connection go.
            evicted.closer.shutdown(Shutdown::Both).ok();
        }
        let id = open.next_id;
        open.next_id += 1;
        let waiting = Arc::new(AtomicBool::new(true));
        open.entries.push(Entry {
            id,
            closer,
            waiting: waiting.clone(),
        });
        Some(Ticket {
            connections: self.clone(),
            id,
            waiting,
        })
    }
}

impl Ticket {
    /// Marks the connection as waiting for a request head (evictable) or
    /// busy with a request.
    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.entries.retain(|e| e.id != self.id);
    }
}
