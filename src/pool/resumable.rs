//! Resumable (tus) uploads in the pool: one file received over several
//! requests, perhaps by several processes, in the same bucket layout as a
//! multipart upload (`0.part` while incomplete, `0` once whole, the status
//! in `status.json`).
//!
//! Between requests no one holds the bucket's lock and the status stays
//! `uploading`: its `tus` record tells readers that this is not an
//! interrupted upload (see [`super::Bucket::status`]). A request that
//! writes (`PATCH`, or a creation with a body) holds the lock exclusively
//! for as long as it writes, so one writes at a time across every process
//! sharing the pool.
//!
//! The offset is the smaller of `received` in the status and the length
//! of `0.part`. Every write reaches the file before `received` counts it,
//! so after a writer was killed the file may be longer than `received`
//! (those bytes are cut off by the next writer); after a power loss,
//! `received` of a progress document (not flushed) may be ahead of the
//! file. A request answers with an offset only once the file is flushed
//! up to it and the status with that offset is durable.
//!
//! An unfinished upload expires (tus' expiration extension) the pool's
//! `expire_after` after its last write, or its creation: every status a
//! writer records carries the time (`tus.expires`). Past it the upload
//! answers 410 and its bucket is removed, by the request that finds it
//! expired or by [`Pool::expire`] (the daemon's and the FastCGI
//! responder's sweep, `fileupload gc --unfinished`). A complete upload
//! does not expire.
//!
//! A partial upload (concatenation extension) is one like any other,
//! marked `partial`; a final upload is made whole at its creation from
//! complete partial ones ([`Pool::open_partial`], [`Resumable::append_file`])
//! and is never written to again.
//!
//! A request that finds the lock held takes the upload over, as tusd's
//! lock-release request does: the writer may be a PATCH whose client is
//! gone without the server seeing its connection break, and its client
//! is the one asking again. It leaves a `takeover` mark in the bucket and
//! waits up to [`TAKEOVER_WAIT`] for the lock. The writer sees the mark at
//! its next progress publication, or (woken by its [`StopWatch`] when the
//! front end can wake a blocked read) within [`STOP_POLL`] while its
//! client is silent; it then saves what it has, flushed and recorded
//! durably, and lets go. The new request goes on from the saved offset.
//! The mark is removed by whoever takes the lock next.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::digest;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};

use super::store::{Finished, Hasher, Hashing, Store, Then};
use super::{
    CLEARED, GC_LOCK_WAIT, Hold, PUBLISH_INTERVAL, Pool, WRITER_LOCK_WAIT, clear_contents,
    cleared_error, create_new, due_by_bytes, is_gone, lock_existing, read_nofollow,
    read_status_listed, remove_bucket, sync_dir, unique_suffix, write_status,
};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::identifier::{Identifier, to_hex};
use crate::model::status::{DEFAULT_CONTENT_TYPE, FileInfo, State, Status, TusRecord};
use crate::model::tus::{Metadata, PARTIAL};

/// The data file's name while it is being received.
const DATA_PART: &str = "0.part";
/// The data file's name once complete.
const DATA: &str = "0";
/// The form field name a tus upload's file is described under: tus has
/// no form, and `file` is the name the curl examples of the README use.
const FIELD: &str = "file";
/// Bytes per block of a request's `Store`, and blocks in flight. A PATCH
/// is answered only once its last block is written (and, where the
/// process ends with the request, hashed), so smaller
/// blocks than a multipart file's shorten that wait (the end of an 8 MiB
/// PATCH, that wait and the saving, averaged 2.5 ms with 1 MiB blocks and
/// 1.6 ms with these), at some cost in throughput. In interleaved runs of 256 MiB (8 rounds, the order
/// alternating), tus-js-client's 8 MiB PATCHes took 0.424 s with these
/// against 0.469 s with 1 MiB blocks, and one PATCH of the whole file
/// 0.322 against 0.302 s; 256 KiB blocks (eight) were no faster in
/// PATCHes and slower in one. Multipart files keep 1 MiB.
const STORE_BLOCK: usize = 512 << 10;
/// Blocks of [`STORE_BLOCK`] in flight.
const STORE_BLOCKS: usize = 4;
/// A body of at least this many bytes (one PATCH of a large file) waits
/// for its last block once, and is stored as a multipart file is, in
/// 1 MiB blocks.
const LONG_BODY: u64 = 64 << 20;
/// The file in a bucket that carries the SHA-256 of the data file's bytes
/// from one request to the next (see [`HashState`]).
const HASH_STATE: &str = "sha256.state";
/// [`HASH_STATE`] while it is written.
const HASH_STATE_TMP: &str = "sha256.state.tmp";
/// Bytes hashed at a time when an upload completes.
const HASH_BLOCK: usize = 1 << 20;
/// How long a hashing thread that lags behind its request's answer waits
/// to hear that the status with the request's offset is durable before it
/// saves the hash's state (see [`Resumable::drain_lagging`]); past it, the
/// state is not saved.
const DURABLE_WAIT: Duration = Duration::from_secs(10);
/// Hashes lagging behind their answers that a process keeps for the next
/// request of their uploads at most (see [`LaggedHashes`]).
const LAGGED_MOST: usize = 256;
/// How long an unfinished upload lives after its last write unless
/// `--expire-after` says otherwise: tusd's default.
pub(crate) const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The mark a request leaves in the bucket to ask the writer to stop.
pub(super) const TAKEOVER: &str = "takeover";
/// How long a request waits for the writer it asked to stop: a writer
/// that can be woken stops within [`STOP_POLL`] and a flush; a second
/// more covers a slow disk.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);
/// How often a writer whose read can be woken looks for the marks.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(100);

/// What `HEAD` reports of a tus upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Info {
    /// Bytes stored.
    pub(crate) offset: u64,
    /// The upload's length, once known.
    pub(crate) length: Option<u64>,
    /// `Upload-Metadata` as the client sent it at creation.
    pub(crate) metadata: Option<String>,
    /// When the unfinished upload expires, in seconds since the Unix epoch.
    pub(crate) expires: Option<u64>,
    /// `Upload-Concat`: `partial`, or `final;` and the URLs.
    pub(crate) concat: Option<String>,
}

impl Pool {
    /// Creates a tus upload under a new identifier: its bucket, an empty
    /// data file, and its status, durably, with its `Upload-Concat` value
    /// (`partial`, or `final;` and the URLs) when it has one. The upload is
    /// returned held, so that a body sent with the creation (or a final
    /// upload's partial ones) can be written at once.
    pub(crate) fn create_resumable(
        &self,
        id: &Identifier,
        length: Option<u64>,
        metadata: &Metadata,
        concat: Option<String>,
    ) -> Result<Resumable> {
        let dir = self.bucket_dir(id);
        let lock = self.lock_for_writing(id)?;
        clear_contents(&dir)?;
        let file = create_new(&dir.join(DATA_PART))
            .map_err(|e| Error::disk("create the uploaded file", &e))?;
        let mut status = Status::begin(self.format_identifier(id), length);
        status.filename = metadata.filename();
        status.content_type = Some(
            metadata
                .content_type()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        );
        status.metadata = (!metadata.pairs.is_empty()).then(|| metadata.pairs.clone());
        status.tus = Some(TusRecord {
            upload_metadata: (!metadata.raw.is_empty()).then(|| metadata.raw.clone()),
            upload_concat: concat,
            expires: None,
        });
        let mut upload = Resumable::new(dir, lock, Some(file), status, self);
        upload.stamp();
        write_status(&upload.dir, &upload.status, true)?;
        sync_dir(&upload.dir)?;
        upload.begin_hash(Carry::Ready(Some(Sha256::new())));
        Ok(upload)
    }

    /// Takes a tus upload for writing: 404 when there is none under this
    /// identifier (or the upload under it is not a tus one). When another
    /// request, in this or any process, writes to it, that one is asked to
    /// stop and save what it has (see the module documentation); 423 when
    /// it has not within [`TAKEOVER_WAIT`].
    pub(crate) fn resume(&self, id: &Identifier) -> Result<Resumable> {
        let dir = self.bucket_dir(id);
        let hold = match lock_existing(&dir, WRITER_LOCK_WAIT)? {
            Hold::Busy => {
                // Only a tus upload's writer is asked: a multipart one
                // holds an upload no PATCH may touch.
                if self.access_upload_bucket(id).status()?.tus.is_none() {
                    return Err(no_upload());
                }
                match create_new(&dir.join(TAKEOVER)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) if is_gone(&e) => return Err(no_upload()),
                    Err(e) => return Err(Error::disk("ask the writer to stop", &e)),
                }
                lock_existing(&dir, TAKEOVER_WAIT)?
            }
            hold => hold,
        };
        let (lock, listing) = match hold {
            Hold::Locked(lock, listing) => (lock, listing),
            // The mark stays: the writer stops when it next can.
            Hold::Busy => {
                return Err(Error::new(
                    ErrorKind::Locked,
                    "another request is writing to this upload and has not stopped yet; \
                     try again shortly",
                ));
            }
            Hold::Gone => return Err(no_upload()),
        };
        // A mark left for an earlier writer is not for this one. The
        // listing that showed the lock current says whether there is one
        // (a listing is answered by a network filesystem's servers); a
        // mark made since is for this writer, which then stops.
        if listing.takeover {
            match std::fs::remove_file(dir.join(TAKEOVER)) {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(Error::disk("remove the takeover mark", &e)),
            }
        }
        let status = read_status_listed(&dir, self.shared, Some(listing))?
            .status
            .filter(|s| s.tus.is_some())
            .ok_or_else(no_upload)?;
        if is_expired(&status, SystemTime::now()) {
            remove_bucket(&dir, lock)?;
            return Err(expired());
        }
        match status.state {
            State::Done => Ok(Resumable::new(dir, lock, None, status, self)),
            State::Uploading => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(dir.join(DATA_PART))
                    .map_err(|e| Error::disk("open the uploaded file", &e))?;
                let mut upload = Resumable::new(dir, lock, Some(file), status, self);
                upload.settle()?;
                let offset = upload.offset();
                // The hash of the request before in this process, perhaps
                // still being computed, when it is for this offset of this
                // file: the same hash as a state saved for the offset, and
                // no read of the bucket (a round trip to the servers of a
                // network filesystem). Else the state in the bucket.
                let lagged = match (&self.lagged, upload.file_id) {
                    (Some(lagged), Some(file)) => lagged.take(&upload.dir, offset, file),
                    _ => None,
                };
                let hash = match lagged {
                    Some(hashing) => Carry::Pending(hashing),
                    None => Carry::Ready(HashState::load(&upload.dir, offset)),
                };
                upload.begin_hash(hash);
                Ok(upload)
            }
            State::Starting | State::Error => Err(no_upload()),
        }
    }

    /// What `HEAD` answers for a tus upload; 404 when there is none, 410
    /// when it expired (it is removed then).
    pub(crate) fn resumable_info(&self, id: &Identifier) -> Result<Info> {
        let status = self.access_upload_bucket(id).status()?;
        let Some(tus) = status.tus.clone() else {
            return Err(no_upload());
        };
        if is_expired(&status, SystemTime::now()) && self.remove_expired(id)? {
            return Err(expired());
        }
        let length = status.size.flatten();
        let offset = match status.state {
            State::Done => status.files().first().and_then(|f| f.length).unwrap_or(0),
            State::Uploading => {
                let received = status.received.unwrap_or(0);
                match std::fs::symlink_metadata(self.bucket_dir(id).join(DATA_PART)) {
                    Ok(m) => received.min(m.len()),
                    // Completed (renamed) or removed since the status was read.
                    Err(e) if is_gone(&e) => received,
                    Err(e) => return Err(Error::disk("read the uploaded file", &e)),
                }
            }
            State::Starting | State::Error => return Err(no_upload()),
        };
        Ok(Info {
            offset,
            length,
            metadata: tus.upload_metadata,
            expires: tus.expires,
            concat: tus.upload_concat,
        })
    }

    /// Removes the upload under `id` if it is expired when read under its
    /// lock; whether it is gone. One a writer holds is being written to,
    /// so not expired: it stays.
    fn remove_expired(&self, id: &Identifier) -> Result<bool> {
        let dir = self.bucket_dir(id);
        match lock_existing(&dir, GC_LOCK_WAIT)? {
            Hold::Locked(lock, listing) => {
                let status = read_status_listed(&dir, self.shared, Some(listing))?.status;
                if status.is_some_and(|s| is_expired(&s, SystemTime::now())) {
                    remove_bucket(&dir, lock)?;
                    return Ok(true);
                }
                Ok(false)
            }
            Hold::Busy => Ok(false),
            Hold::Gone => Ok(true),
        }
    }

    /// Removes every expired unfinished tus upload (one a writer holds is
    /// left alone); returns their identifiers. The daemon and the FastCGI
    /// responder call it periodically, `fileupload gc --unfinished` once.
    pub(crate) fn expire(&self) -> Result<Vec<Identifier>> {
        let now = SystemTime::now();
        self.sweep(false, |fresh| {
            fresh.status.as_ref().is_some_and(|s| is_expired(s, now))
        })
    }

    /// A complete partial upload's data file, opened for reading, and its
    /// length, for a final upload to be made of: 404 when there is no tus
    /// upload under `id`, 400 when it is not a partial one (an ordinary
    /// upload, a final one) or not complete yet.
    pub(crate) fn open_partial(&self, id: &Identifier) -> Result<(File, u64)> {
        let status = self.access_upload_bucket(id).status()?;
        let tus = status.tus.as_ref().ok_or_else(no_upload)?;
        if tus.upload_concat.as_deref() != Some(PARTIAL) {
            return Err(Error::bad_request("not a partial upload"));
        }
        match status.state {
            State::Done => {}
            State::Uploading => {
                return Err(Error::bad_request("a partial upload that is not complete"));
            }
            State::Starting | State::Error => return Err(no_upload()),
        }
        let length = status
            .files()
            .first()
            .and_then(|f| f.length)
            .ok_or_else(|| Error::internal("a complete upload without its length"))?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.bucket_dir(id).join(DATA))
            .map_err(|e| {
                if is_gone(&e) {
                    no_upload()
                } else {
                    Error::disk("open a partial upload", &e)
                }
            })?;
        let on_disk = file
            .metadata()
            .map_err(|e| Error::disk("read a partial upload", &e))?
            .len();
        if on_disk != length {
            return Err(Error::internal(format!(
                "a partial upload holds {on_disk} bytes where {length} were stored"
            )));
        }
        Ok((file, length))
    }
}

fn no_upload() -> Error {
    Error::not_found("no such upload")
}

fn expired() -> Error {
    Error::new(ErrorKind::Gone, "the upload expired")
}

/// Whether `status` is an unfinished tus upload whose time is up at `now`.
fn is_expired(status: &Status, now: SystemTime) -> bool {
    status.state == State::Uploading
        && status
            .tus
            .as_ref()
            .and_then(|t| t.expires)
            .and_then(|at| UNIX_EPOCH.checked_add(Duration::from_secs(at)))
            .is_some_and(|at| now >= at)
}

fn taken_over() -> Error {
    Error::new(
        ErrorKind::Locked,
        "another request took this upload over; what arrived is kept",
    )
}

/// Whether a writer has been asked to stop: another request taking the
/// upload over, or a clear (termination). Cheap to ask (one or two
/// `stat`s), and usable from another thread than the writer's.
#[derive(Debug, Clone)]
pub(crate) struct StopWatch {
    dir: PathBuf,
}

impl StopWatch {
    /// Why the writer must stop, if it must: 410 when the upload was
    /// cleared, 423 when another request takes it over.
    pub(crate) fn why(&self) -> Option<Error> {
        if self.dir.join(CLEARED).exists() {
            Some(cleared_error())
        } else if self.dir.join(TAKEOVER).exists() {
            Some(taken_over())
        } else {
            None
        }
    }
}

/// Sets when the upload of `status` expires (see [`Resumable::stamp`]).
fn stamp(status: &mut Status, expire_after: Duration) {
    let unfinished = status.state != State::Done;
    let expires = unfinished
        .then(|| SystemTime::now().checked_add(expire_after))
        .flatten()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    if let Some(tus) = status.tus.as_mut() {
        tus.expires = expires;
    }
}

/// The progress a writer publishes: from the receiving thread as bytes
/// arrive, and, while a `Store` runs, from its writing thread as they
/// reach the file, so that the status shows them while the client is
/// silent. One at a time (the lock); only bytes that have reached the file
/// are published.
#[derive(Debug)]
struct Publisher {
    dir: PathBuf,
    expire_after: Duration,
    /// The pool is on a network filesystem (see [`due_by_bytes`]). One
    /// publication a MiB held a tus upload onto GlusterFS to about 40 MB/s.
    shared: bool,
    state: Mutex<Published>,
}

#[derive(Debug)]
struct Published {
    /// The writer's status, as last published.
    status: Status,
    /// The offset where the running store began.
    base: u64,
    at: Instant,
    received: u64,
    /// A publication that failed, for the receiving thread to answer.
    failed: Option<Error>,
}

impl Publisher {
    fn new(dir: PathBuf, expire_after: Duration, shared: bool, status: &Status) -> Publisher {
        let received = status.received.unwrap_or(0);
        Publisher {
            dir,
            expire_after,
            shared,
            state: Mutex::new(Published {
                status: status.clone(),
                base: received,
                at: Instant::now(),
                received,
                failed: None,
            }),
        }
    }

    /// A store begins at `base`: what is published from now on is
    /// `status` with the bytes the store has written after `base`.
    fn begin(&self, base: u64, status: &Status) {
        if let Ok(mut p) = self.state.lock() {
            p.status = status.clone();
            p.base = base;
        }
    }

    /// Publishes the store's `written` bytes as received, when the last
    /// publication is [`PUBLISH_INTERVAL`] old or [`due_by_bytes`] says so.
    /// Returns the error of a publication that failed, once (the writing
    /// thread leaves it to the receiving thread).
    fn offer(&self, written: u64) -> Option<Error> {
        let Ok(p) = self.state.lock() else {
            return None;
        };
        self.publish(p, written)
    }

    /// [`Publisher::offer`] for the receiving thread, which does not wait
    /// while the writing thread publishes: that one shows the bytes
    /// anyway, and the receiving thread would otherwise stand idle for a
    /// file's creation and rename once a MiB.
    fn offer_unless_busy(&self, written: u64) -> Option<Error> {
        match self.state.try_lock() {
            Ok(p) => self.publish(p, written),
            Err(_) => None,
        }
    }

    /// The work of [`Publisher::offer`], under its lock `p`.
    fn publish(&self, mut p: MutexGuard<'_, Published>, written: u64) -> Option<Error> {
        let received = p.base + written;
        // `received` may have gone back (settle, rewind) below what was
        // published: that is no progress to count.
        if p.at.elapsed() >= PUBLISH_INTERVAL || due_by_bytes(self.shared, p.received, received) {
            p.status.received = Some(received);
            stamp(&mut p.status, self.expire_after);
            if let Err(e) = write_status(&self.dir, &p.status, false) {
                p.failed.get_or_insert(e);
            }
            p.at = Instant::now();
            p.received = received;
        }
        p.failed.take()
    }

    /// Whether a publication is due by the clock: not while the writing
    /// thread is publishing.
    fn due(&self) -> bool {
        match self.state.try_lock() {
            Ok(p) => p.at.elapsed() >= PUBLISH_INTERVAL,
            Err(std::sync::TryLockError::WouldBlock) => false,
            Err(std::sync::TryLockError::Poisoned(_)) => true,
        }
    }
}

/// A tus upload held for writing; see the module documentation. Dropped
/// without [`Resumable::save`], it saves what it has all the same.
#[derive(Debug)]
pub(crate) struct Resumable {
    dir: PathBuf,
    lock: Option<File>,
    /// `None` once the upload is complete.
    file: Option<File>,
    /// This request's bytes on their way to the file (through a clone of
    /// `file`), from its first write until they are drained.
    store: Option<Store<Carry>>,
    /// The progress, published by either thread.
    publisher: Arc<Publisher>,
    /// Bytes given when the stop marks were last looked for.
    checked: u64,
    /// The offset where `store` began.
    base: u64,
    /// `received` is what has reached the file: it is published, and a
    /// process killed loses what was still in the store's blocks.
    status: Status,
    /// The SHA-256 of the data file's bytes up to the offset, when known:
    /// carried from request to request, so that completing an upload
    /// does not read it all again. `None` once unknown (a writer killed
    /// before it saved), and then the file is read again at completion.
    /// While the store runs, the store has it.
    hash: Carry,
    /// The hash where this request's bytes began: a chunk cut off again
    /// (a checksum mismatch) takes the hash back with it.
    hash_mark: Option<(u64, Sha256)>,
    expire_after: Duration,
    /// The length of this request's body, when it said so.
    body_length: Option<u64>,
    /// Where a request answered before its hash is through leaves the
    /// hash for the next request of this upload in this process; `None`
    /// where the process ends with the request (CGI).
    lagged: Option<Arc<LaggedHashes>>,
    /// Which data file the upload's is (see [`FileId`]).
    file_id: Option<FileId>,
}

impl Resumable {
    fn new(dir: PathBuf, lock: File, file: Option<File>, status: Status, pool: &Pool) -> Resumable {
        let expire_after = pool.expire_after;
        let file_id = file.as_ref().and_then(file_id);
        let received = status.received.unwrap_or(0);
        let publisher = Arc::new(Publisher::new(
            dir.clone(),
            expire_after,
            pool.shared,
            &status,
        ));
        Resumable {
            dir,
            lock: Some(lock),
            file,
            store: None,
            publisher,
            checked: received,
            base: received,
            status,
            hash: Carry::Ready(None),
            hash_mark: None,
            expire_after,
            body_length: None,
            lagged: pool.lagged.clone(),
            file_id,
        }
    }

    /// Sets when the upload expires, before its status is written: the
    /// pool's `expire_after` from now while unfinished (rounded up to the
    /// second, so that `Upload-Expires` is never earlier than the truth),
    /// never once complete.
    fn stamp(&mut self) {
        stamp(&mut self.status, self.expire_after);
    }

    /// The upload's `Upload-Concat` value, if it has one.
    pub(crate) fn concat(&self) -> Option<&str> {
        self.status.tus.as_ref()?.upload_concat.as_deref()
    }

    /// Appends `length` bytes of `source` from where it stands, the kernel
    /// copying them file to file where it can (`copy_file_range`, through
    /// `std::io::copy`): nothing passes through memory here. 413 for bytes
    /// beyond the upload's length, of which none is written.
    pub(crate) fn append_file(&mut self, source: &File, length: u64) -> Result<()> {
        self.drain()?;
        let end = self.offset().saturating_add(length);
        if self.length().is_some_and(|l| end > l) {
            return Err(Error::too_large("more bytes than the upload's length"));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(Error::too_large("more bytes than the upload's length"));
        };
        let copied = io::copy(&mut source.take(length), file)
            .map_err(|e| Error::disk("copy a partial upload", &e))?;
        if copied != length {
            return Err(Error::internal(format!(
                "a partial upload gave {copied} bytes of {length}"
            )));
        }
        self.status.received = Some(end);
        // Copied by the kernel, not seen here: the file is hashed whole
        // when the upload completes.
        self.hash = Carry::Ready(None);
        Ok(())
    }

    /// Removes the upload, bucket and all: a final upload that could not
    /// be made whole.
    pub(crate) fn discard(mut self) -> Result<()> {
        self.store = None;
        self.file = None;
        match self.lock.take() {
            Some(lock) => remove_bucket(&self.dir, lock),
            None => Ok(()),
        }
    }

    /// Starts this request's hashing from `hash`, the SHA-256 of the bytes
    /// up to the offset (when known). A hash still being computed leaves no
    /// mark to go back to: a chunk cut off again then loses the hash.
    fn begin_hash(&mut self, hash: Carry) {
        self.hash_mark = match &hash {
            Carry::Ready(Some(h)) => Some((self.offset(), h.clone())),
            _ => None,
        };
        self.hash = hash;
    }

    /// The length of the body this request will write, when its head
    /// says it (`Content-Length`): how the bytes are stored depends on it.
    pub(crate) fn expect_body(&mut self, length: Option<u64>) {
        self.body_length = length;
    }

    /// What tells whether this writer has been asked to stop.
    pub(crate) fn stop_watch(&self) -> StopWatch {
        StopWatch {
            dir: self.dir.clone(),
        }
    }

    /// Whether the upload was complete already when it was taken.
    pub(crate) fn is_done(&self) -> bool {
        self.file.is_none()
    }

    /// Bytes stored so far: those written, and those on their way.
    pub(crate) fn offset(&self) -> u64 {
        match &self.store {
            Some(store) => self.base + store.length(),
            None => self.status.received.unwrap_or(0),
        }
    }

    /// The upload's length, once known.
    pub(crate) fn length(&self) -> Option<u64> {
        self.status.size.flatten()
    }

    /// Sets the length of an upload created without one (tus'
    /// `Upload-Defer-Length`). Once set, the length cannot change (400),
    /// nor be less than what is stored.
    pub(crate) fn set_length(&mut self, length: u64) -> Result<()> {
        match self.length() {
            Some(known) if known == length => return Ok(()),
            Some(_) => return Err(Error::bad_request("Upload-Length cannot change once set")),
            None => {}
        }
        if length < self.offset() {
            return Err(Error::bad_request(
                "Upload-Length is less than the bytes already stored",
            ));
        }
        self.status.size = Some(Some(length));
        Ok(())
    }

    /// Makes the data file and `received` agree, on the smaller (see the
    /// module documentation), before anything is appended.
    fn settle(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let on_disk = file
            .metadata()
            .map_err(|e| Error::disk("read the uploaded file", &e))?
            .len();
        let offset = self.offset().min(on_disk);
        if on_disk != offset {
            file.set_len(offset)
                .map_err(|e| Error::disk("cut the uploaded file", &e))?;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::disk("seek in the uploaded file", &e))?;
        self.status.received = Some(offset);
        Ok(())
    }

    /// Appends bytes, publishing progress as a multipart upload does.
    /// Fails when the upload was cleared meanwhile, and (413) for bytes
    /// beyond its length, of which none is written.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let end = self.offset() + bytes.len() as u64;
        if self.length().is_some_and(|length| end > length) || self.file.is_none() {
            return Err(Error::too_large("more bytes than the upload's length"));
        }
        if self.store.is_none() {
            let Some(file) = self.file.as_ref() else {
                return Err(Error::too_large("more bytes than the upload's length"));
            };
            let clone = file
                .try_clone()
                .map_err(|e| Error::disk("write the uploaded file", &e))?;
            self.base = self.offset();
            self.publisher.begin(self.base, &self.status);
            let tell = Arc::clone(&self.publisher);
            let hash = std::mem::replace(&mut self.hash, Carry::Ready(None));
            let store =
                Store::append(clone, self.base, hash).on_written(Arc::new(move |written| {
                    // An error is the receiving thread's to answer.
                    let _ = tell.offer(written);
                }));
            // A long body waits for its last block once; a short one
            // (tus-js-client's 8 MiB) once a request.
            self.store = Some(match self.body_length {
                Some(length) if length >= LONG_BODY => store,
                _ => store.with_blocks(STORE_BLOCK, STORE_BLOCKS),
            });
        }
        let Some(store) = self.store.as_mut() else {
            return Err(Error::internal("the upload's store is gone"));
        };
        store.write(bytes)?;
        let due = self.publisher.due();
        if due {
            // Bytes that arrive slowly reach the file, and so the status.
            store.flush_stale(PUBLISH_INTERVAL)?;
        }
        if let Some(e) = self.publisher.offer_unless_busy(store.written()) {
            return Err(e);
        }
        let given = self.base + store.length();
        // Looking for the stop marks costs two lookups, round trips to the
        // servers of a network filesystem: as often as a publication.
        if due || due_by_bytes(self.publisher.shared, self.checked, given) {
            self.checked = given;
            if let Some(why) = self.stop_watch().why() {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Writes what the store holds to the file and takes the hash back:
    /// `received` is then every byte given. On a failure, `received` stays
    /// at what had reached the file, and the hash is lost.
    fn drain(&mut self) -> Result<()> {
        self.drain_lagging(None)
    }

    /// [`Resumable::drain`]; with `durable`, without waiting for the hash:
    /// once the bytes are in the file, the request may be answered while
    /// the hashing thread goes through the last blocks (the answer promises
    /// the bytes on disk, not their hash). The thread then saves the hash's
    /// state itself once `durable` says `true`: the status with the new
    /// offset is durable. Nothing said within [`DURABLE_WAIT`], or the
    /// sender dropped, is `false`. The next request of the upload in this
    /// process goes on from the thread.
    fn drain_lagging(&mut self, durable: Option<Receiver<bool>>) -> Result<()> {
        let Some(store) = self.store.take() else {
            return Ok(());
        };
        let written = self.base + store.written();
        self.status.received = Some(written);
        let (length, hash) = match durable {
            None => {
                let (_, length, hash) = store.finish_hash()?;
                (length, hash)
            }
            Some(durable) => {
                let (dir, offset) = (self.dir.clone(), self.base + store.length());
                let then: Then<Carry> = Box::new(move |hash: &Carry| {
                    if let Carry::Ready(Some(hash)) = hash
                        && durable.recv_timeout(DURABLE_WAIT) == Ok(true)
                    {
                        HashState::save(&dir, offset, hash);
                    }
                });
                let (_, length, hash) = store.finish_lagging(then)?;
                let hash = match hash {
                    Finished::Done(hash) => hash,
                    Finished::Hashing(hashing) => Carry::Pending(hashing),
                };
                (length, hash)
            }
        };
        self.status.received = Some(self.base + length);
        self.hash = hash;
        Ok(())
    }

    /// Sets the upload back to `offset` (no further than where it is),
    /// cutting off the bytes after it: a chunk that failed its checksum is
    /// not kept.
    pub(crate) fn rewind(&mut self, offset: u64) -> Result<()> {
        self.drain()?;
        let offset = offset.min(self.offset());
        if let Some(mut file) = self.file.as_ref() {
            file.set_len(offset)
                .and_then(|()| file.seek(SeekFrom::Start(offset)))
                .map_err(|e| Error::disk("cut the uploaded file", &e))?;
        }
        self.status.received = Some(offset);
        // The hash cannot forget bytes: back to where this request began,
        // or unknown.
        self.hash = match &self.hash_mark {
            Some((at, hash)) if *at == offset => Carry::Ready(Some(hash.clone())),
            _ => Carry::Ready(None),
        };
        Ok(())
    }

    /// Flushes what was written, records the offset durably, and once the
    /// offset reaches the length completes the upload: the file hashed
    /// (read again whole, since its bytes may have come from several
    /// processes), renamed to its final name, the status `done`. Returns
    /// the status. A cleared upload is removed here instead (410).
    pub(crate) fn save(mut self) -> Result<Status> {
        self.save_inner()
    }

    fn save_inner(&mut self) -> Result<Status> {
        // Told once the status is durable; dropped unsent on every other
        // way out, which the hashing thread takes as `false`.
        let (durable, durable_rx) = sync_channel::<bool>(1);
        // The hash is needed at once when the upload completes.
        let lag = self.lagged.is_some() && self.length() != Some(self.offset());
        let drained = self.drain_lagging(lag.then_some(durable_rx));
        let Some(lock) = self.lock.take() else {
            return Err(Error::internal("the upload was saved already"));
        };
        if self.dir.join(CLEARED).exists() {
            let _ = remove_bucket(&self.dir, lock);
            return Err(cleared_error());
        }
        let Some(file) = self.file.take() else {
            return Ok(self.status.clone());
        };
        file.sync_data()
            .map_err(|e| Error::disk("flush the uploaded file", &e))?;
        if drained.is_ok() && self.length() == Some(self.offset()) {
            self.complete()?;
        } else {
            self.stamp();
            write_status(&self.dir, &self.status, true)?;
            // After the status is durable (see HashState), and only when it
            // records the offset the hashing thread hashed up to: after a
            // failed write it records less, and a state for bytes that may
            // not be in the file must never be saved.
            let _ = durable.send(drained.is_ok());
            match std::mem::replace(&mut self.hash, Carry::Ready(None)) {
                Carry::Ready(Some(hash)) => HashState::save(&self.dir, self.offset(), &hash),
                Carry::Ready(None) => HashState::forget(&self.dir),
                // Its thread saves the state; the next request here takes
                // the hash from memory.
                Carry::Pending(hashing) => {
                    if let (Some(lagged), Some(file)) = (&self.lagged, self.file_id) {
                        lagged.put(&self.dir, self.offset(), file, hashing);
                    }
                }
            }
        }
        drop(lock);
        // What reached the file is recorded; the error is the request's.
        drained?;
        Ok(self.status.clone())
    }

    fn complete(&mut self) -> Result<()> {
        let hash = std::mem::replace(&mut self.hash, Carry::Ready(None)).wait();
        let (sha256, length) = match hash {
            Some(hash) => (to_hex(&hash.finalize()), self.file_length()?),
            None => self.hash_file()?,
        };
        if length != self.offset() {
            return Err(Error::internal(format!(
                "the uploaded file holds {length} bytes where {} were stored",
                self.offset()
            )));
        }
        std::fs::rename(self.dir.join(DATA_PART), self.dir.join(DATA))
            .map_err(|e| Error::disk("rename the uploaded file", &e))?;
        HashState::forget(&self.dir);
        self.status.files = Some(vec![FileInfo {
            field: FIELD.to_owned(),
            filename: self.status.filename.clone().unwrap_or_default(),
            content_type: self.status.content_type.clone().unwrap_or_default(),
            length: Some(length),
            sha256: Some(sha256),
            path: None,
        }]);
        self.status.state = State::Done;
        self.stamp();
        sync_dir(&self.dir)?;
        write_status(&self.dir, &self.status, true)?;
        sync_dir(&self.dir)
    }

    /// The data file's length.
    fn file_length(&self) -> Result<u64> {
        std::fs::symlink_metadata(self.dir.join(DATA_PART))
            .map(|m| m.len())
            .map_err(|e| Error::disk("read the uploaded file", &e))
    }

    /// The SHA-256 and length of the data file, read again whole: its
    /// bytes may have come from several requests, and the hash carried
    /// between them was lost.
    fn hash_file(&self) -> Result<(String, u64)> {
        // A file of its own: the writing one may have been opened
        // write-only (at creation).
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.dir.join(DATA_PART))
            .map_err(|e| Error::disk("read the uploaded file", &e))?;
        let mut context = digest::Context::new(&digest::SHA256);
        let mut block = vec![0u8; HASH_BLOCK];
        let mut length = 0u64;
        loop {
            match reader.read(&mut block) {
                Ok(0) => break,
                Ok(n) => {
                    context.update(&block[..n]);
                    length += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::disk("read the uploaded file", &e)),
            }
        }
        Ok((to_hex(context.finish().as_ref()), length))
    }
}

/// The SHA-256 of the data file's bytes up to the offset, as a request
/// takes it over from the one before: known, unknown (the file is then
/// read again at completion), or still being computed by the hashing
/// thread of a request before in this process that was answered without
/// waiting for it ([`Resumable::drain_lagging`]).
#[derive(Debug)]
pub(crate) enum Carry {
    /// Known, or not.
    Ready(Option<Sha256>),
    /// The thread that gives it back.
    Pending(Hashing<Carry>),
}

impl Carry {
    /// The hash, once the threads computing it are through.
    fn wait(self) -> Option<Sha256> {
        let mut carry = self;
        loop {
            match carry {
                Carry::Ready(hash) => return hash,
                Carry::Pending(hashing) => match hashing.join() {
                    Ok(Some(next)) => carry = next,
                    // The thread failed: the hash is lost.
                    _ => return None,
                },
            }
        }
    }
}

/// The hashing thread of a request waits here, not the receiving one,
/// for the hash of the request before.
impl Hasher for Carry {
    fn update(&mut self, bytes: &[u8]) {
        if let Carry::Pending(_) = self {
            let pending = std::mem::replace(self, Carry::Ready(None));
            *self = Carry::Ready(pending.wait());
        }
        if let Carry::Ready(Some(hash)) = self {
            Digest::update(hash, bytes);
        }
    }
}

/// Which data file: device, inode and creation time. A hash kept in
/// memory is taken only for the file it was computed from, never for a
/// later upload's file in a bucket made again under the same identifier.
type FileId = (u64, u64, Option<SystemTime>);

fn file_id(file: &File) -> Option<FileId> {
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino(), meta.created().ok()))
}

/// The hashes of a process's requests that were answered before their
/// hashing threads were through, for the next request of each upload in
/// the same process: it goes on from the thread instead of waiting for it
/// or reading the file again. Kept by a long-running front end's pool
/// ([`Pool::with_lagging_hash`]); a request elsewhere finds the state
/// the thread saves in the bucket once it is through.
#[derive(Debug, Default)]
pub(crate) struct LaggedHashes {
    pending: Mutex<HashMap<PathBuf, Lagged>>,
}

#[derive(Debug)]
struct Lagged {
    offset: u64,
    file: FileId,
    hashing: Hashing<Carry>,
}

impl LaggedHashes {
    /// Keeps the hash of the upload in `dir` at `offset`. Beyond
    /// [`LAGGED_MOST`] uploads, those whose threads are through (and have
    /// saved their state) make room; a hash that finds none is dropped,
    /// its thread still saving the state.
    fn put(&self, dir: &Path, offset: u64, file: FileId, hashing: Hashing<Carry>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.len() >= LAGGED_MOST {
            pending.retain(|_, lagged| !lagged.hashing.is_finished());
        }
        if pending.len() < LAGGED_MOST {
            let lagged = Lagged {
                offset,
                file,
                hashing,
            };
            pending.insert(dir.to_owned(), lagged);
        }
    }

    /// Takes what is kept for the upload in `dir`; its hash when it is for
    /// this offset of this file.
    fn take(&self, dir: &Path, offset: u64, file: FileId) -> Option<Hashing<Carry>> {
        let lagged = self.pending.lock().ok()?.remove(dir)?;
        (lagged.offset == offset && lagged.file == file).then_some(lagged.hashing)
    }
}

/// The SHA-256 of a data file's first bytes, kept in the bucket between
/// requests: the hash's inner state (`sha2` can give it out and take it
/// back; `ring` cannot), the offset it has hashed up to, and a SHA-256 of
/// both, so that a file damaged by a crash is never taken for a state.
///
/// It is written only after the status with its offset is durable (by
/// the request, or, where the request was answered before its hash was
/// through, by its hashing thread once told the status is:
/// [`Resumable::drain_lagging`]), and
/// taken only for exactly the offset a request resumes at. The bytes below
/// a durable offset never change (a later writer settles at that offset
/// or beyond, and cuts off only what it wrote itself), so a state that
/// names the offset is the hash of the bytes there. A state that is
/// missing, damaged or for another offset (a writer killed between two
/// saves) is not used: the file is read again when the upload completes.
struct HashState;

impl HashState {
    /// Bytes of the check appended to the state.
    const CHECK: usize = 32;

    fn load(dir: &Path, offset: u64) -> Option<Sha256> {
        let (bytes, _) = read_nofollow(&dir.join(HASH_STATE)).ok()?;
        let (body, check) = bytes.split_at_checked(bytes.len().checked_sub(Self::CHECK)?)?;
        if digest::digest(&digest::SHA256, body).as_ref() != check {
            return None;
        }
        let (at, state) = body.split_first_chunk::<8>()?;
        if u64::from_le_bytes(*at) != offset {
            return None;
        }
        Sha256::deserialize(&state.try_into().ok()?).ok()
    }

    /// Writes the state (a new file renamed over the old, so that a reader
    /// finds the old state or the new one). A failure is not an error of
    /// the request: the file is then read again at completion.
    fn save(dir: &Path, offset: u64, hash: &Sha256) {
        let mut bytes = offset.to_le_bytes().to_vec();
        bytes.extend_from_slice(&hash.serialize());
        let check = digest::digest(&digest::SHA256, &bytes);
        bytes.extend_from_slice(check.as_ref());
        // A name of its own: a hashing thread that lagged behind its
        // request may save beside the next request's writer.
        let Ok(suffix) = unique_suffix() else {
            Self::forget(dir);
            return;
        };
        let tmp = dir.join(format!("{HASH_STATE_TMP}.{suffix}"));
        let written = create_new(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| std::fs::rename(&tmp, dir.join(HASH_STATE)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            Self::forget(dir);
        }
    }

    /// Removes the state: it no longer applies (nor would it be taken).
    fn forget(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(HASH_STATE));
    }
}

impl Drop for Resumable {
    fn drop(&mut self) {
        // Reached when a request ended early: what was received is kept,
        // as the protocol asks.
        if self.lock.is_some() {
            let _ = self.save_inner();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `received` that `dir`'s status.json says, if there is one.
    fn published(dir: &Path) -> Option<u64> {
        let bytes = std::fs::read(dir.join(super::super::STATUS)).ok()?;
        super::super::parse_status(&bytes).ok()?.received
    }

    #[test]
    fn on_a_network_filesystem_progress_is_published_by_the_clock_alone() {
        let base = std::env::temp_dir().join(format!("publisher-test-{}", std::process::id()));
        let (local_dir, shared_dir) = (base.join("local"), base.join("shared"));
        std::fs::create_dir_all(&local_dir).unwrap();
        std::fs::create_dir_all(&shared_dir).unwrap();
        let status = Status::begin("publisher-test".into(), Some(16 << 20));
        let began = Instant::now();
        let local = Publisher::new(local_dir.clone(), DEFAULT_EXPIRE_AFTER, false, &status);
        let shared = Publisher::new(shared_dir.clone(), DEFAULT_EXPIRE_AFTER, true, &status);
        for publisher in [&local, &shared] {
            assert!(publisher.offer(2 << 20).is_none());
        }
        let quick = began.elapsed() < PUBLISH_INTERVAL;
        // Locally, 1 MiB of progress is published at once.
        assert_eq!(published(&local_dir), Some(2 << 20));
        // On a network filesystem, where a publication costs round trips
        // to the servers, not before the interval (unless this test was
        // itself held up that long, when nothing can be said).
        if quick {
            assert_eq!(published(&shared_dir), None);
        }
        std::thread::sleep(PUBLISH_INTERVAL);
        assert!(shared.offer(3 << 20).is_none());
        assert_eq!(published(&shared_dir), Some(3 << 20));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
