//! The uploads this process is writing, kept in memory, so that a status
//! request for one of them is answered without touching the disk.
//!
//! A status request for a running upload is the request a progress bar
//! sends several times a second, and on the daemon most of them ask about
//! an upload the same process receives. Read from the pool, each costs a
//! listing or an open, a read and a lock probe of the bucket while the
//! uploads compete for the same disk and CPU; from memory it costs a
//! mutex and a clone. What memory holds is the writer's last published
//! document with the bytes received counted since, so it never says less
//! than the pool says, and a client asking one host never sees `received`
//! go backwards. Other processes, and other hosts, still read the pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::model::identifier::Identifier;
use crate::model::status::Status;

/// The uploads this process writes, by bucket.
#[derive(Debug, Default)]
pub(crate) struct Live {
    uploads: Mutex<HashMap<Identifier, Arc<Entry>>>,
}

/// One upload in memory: what its writer last published, and what it has
/// received since.
#[derive(Debug)]
struct Entry {
    published: Mutex<Status>,
    received: AtomicU64,
}

/// A writer's place in [`Live`]; the upload leaves memory when it is
/// dropped, which its writer does before it lets go of the bucket's lock.
#[derive(Debug)]
pub(crate) struct Registration {
    live: Arc<Live>,
    id: Identifier,
    entry: Arc<Entry>,
}

impl Live {
    fn map(&self) -> MutexGuard<'_, HashMap<Identifier, Arc<Entry>>> {
        // Nothing panics while holding it; the map stays consistent if a
        // thread did.
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the upload of bucket `id`, whose lock the caller holds, in
    /// memory with its first document.
    pub(crate) fn register(self: &Arc<Live>, id: &Identifier, status: &Status) -> Registration {
        let entry = Arc::new(Entry {
            published: Mutex::new(status.clone()),
            received: AtomicU64::new(status.received.unwrap_or(0)),
        });
        self.map().insert(id.clone(), entry.clone());
        Registration {
            live: self.clone(),
            id: id.clone(),
            entry,
        }
    }

    /// The status of bucket `id` if this process is writing it.
    pub(crate) fn status(&self, id: &Identifier) -> Option<Status> {
        let entry = self.map().get(id)?.clone();
        let mut status = lock(&entry.published).clone();
        let received = entry.received.load(Ordering::Relaxed);
        // The count can only be ahead of the document, never behind it.
        status.received = Some(received.max(status.received.unwrap_or(0)));
        Some(status)
    }
}

impl Registration {
    /// The writer has read `received` body bytes.
    pub(crate) fn received(&self, received: u64) {
        self.entry.received.store(received, Ordering::Relaxed);
    }

    /// The writer has published `status`.
    pub(crate) fn published(&self, status: &Status) {
        status.clone_into(&mut lock(&self.entry.published));
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.live.map();
        // Only this writer's entry: a writer that has since taken the
        // bucket registered one of its own.
        if map
            .get(&self.id)
            .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            map.remove(&self.id);
        }
    }
}

fn lock(status: &Mutex<Status>) -> MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Identifier {
        Identifier::parse_id(text).unwrap()
    }

    #[test]
    fn an_upload_is_in_memory_while_its_writer_holds_it() {
        let live = Arc::new(Live::default());
        let a = id("a");
        assert!(live.status(&a).is_none());
        let writer = live.register(&a, &Status::begin("a".into(), Some(10)));
        writer.received(4);
        assert_eq!(live.status(&a).unwrap().received, Some(4));
        let mut published = Status::begin("a".into(), Some(10));
        published.received = Some(6);
        published.filename = Some("f".into());
        writer.published(&published);
        let seen = live.status(&a).unwrap();
        assert_eq!(seen.received, Some(6), "never less than the document");
        assert_eq!(seen.filename.as_deref(), Some("f"));
        drop(writer);
        assert!(live.status(&a).is_none());
    }

    #[test]
    fn an_earlier_writer_leaving_does_not_take_a_later_one_with_it() {
        let live = Arc::new(Live::default());
        let a = id("a");
        let first = live.register(&a, &Status::begin("a".into(), None));
        let second = live.register(&a, &Status::begin("a".into(), Some(3)));
        drop(first);
        assert_eq!(live.status(&a).unwrap().size, Some(Some(3)));
        drop(second);
        assert!(live.status(&a).is_none());
    }
}
