//! The pool directory: one bucket per identifier, a lock per bucket, and the
//! status document each writer publishes.
//!
//! Layout of a bucket `<pool>/<ID>/` (mode 0700, files 0600):
//!
//! | name          | what                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `lock`        | empty; `flock`ed exclusively by the writer for the whole upload |
//! | `status.json` | the status document, replaced atomically (see `write_status`) |
//! | `status.tmp`  | the next status document while it is written, then swapped in |
//! | `0`, `1`, …   | the stored files, by their order in the form, once complete  |
//! | `0.part`, …   | a file being received                                        |
//! | `cleared`     | a clear was asked while a writer held the bucket             |
//! | `sha256.state` | a tus upload's SHA-256 so far, between its requests         |
//!
//! Only the holder of the exclusive lock writes in a bucket. A reader that
//! finds `uploading` in `status.json` takes the lock (shared, without
//! waiting) to learn whether the writer still lives: the kernel drops the
//! lock of a dead process, so a free lock under `uploading` is an
//! interrupted upload.
//!
//! The pool may be shared by several hosts on a network filesystem
//! (docs/cluster.md). Its clients cache names for about a second: a host
//! may still find, under `status.json`, a document another host has since
//! replaced. So a reader lists the bucket before it opens a file by name
//! (a listing is answered by the server and refreshes the client's names)
//! and checks that the file it opened is the one listed (see
//! `Listing`); a lock file is current only when the listing names it; a
//! file gone stale under a reader (`ESTALE`) is looked up again.

mod live;
pub(crate) mod priority;
pub(crate) mod resumable;
pub(crate) mod store;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fs2::FileExt;

use crate::model::error::{Error, ErrorKind, Result};
use crate::model::identifier::{Identifier, Signer, to_hex};
use crate::model::status::{FileInfo, State, Status};
use crate::pool::store::Store;
use live::{Live, Registration};

const LOCK: &str = "lock";
const STATUS: &str = "status.json";
const STATUS_TMP: &str = "status.tmp";
const CLEARED: &str = "cleared";
/// In the pool directory, on a network filesystem: held while a bucket is
/// made (see `Pool::make_bucket`). Not an identifier, so never a bucket.
const CREATING: &str = ".creating.lock";
/// How long a writer waits for another host to finish making a bucket.
const CREATING_WAIT: Duration = Duration::from_secs(5);
const PART: &str = ".part";

/// Progress is published at least after this many bytes…
const PUBLISH_BYTES: u64 = 1 << 20;
/// …or after this long, whichever comes first.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a writer that has `received` bytes, and last published at
/// `published`, publishes its progress (and looks for the marks that ask
/// it to stop) before [`PUBLISH_INTERVAL`] says so: [`PUBLISH_BYTES`]
/// later on a local filesystem, never on a network one (`shared`), where
/// the clock alone decides (see [`Upload::progress`]). Both kinds of upload,
/// multipart and tus, go by it.
fn due_by_bytes(shared: bool, published: u64, received: u64) -> bool {
    !shared && received.saturating_sub(published) >= PUBLISH_BYTES
}
/// How long a writer waits for a bucket lock that a status reader may hold
/// for a moment before it concludes another writer has it.
const WRITER_LOCK_WAIT: Duration = Duration::from_millis(100);
/// How long `gc` waits for a lock that a status reader may hold for a moment.
const GC_LOCK_WAIT: Duration = Duration::from_millis(20);
/// How long a clear waits for the writer of an upload in progress to notice.
const CLEAR_WAIT: Duration = Duration::from_secs(2);

/// The error status recorded for an upload whose writer died.
pub const INTERRUPTED: &str = "upload interrupted";

/// A pool directory shared by every process that serves the same uploads.
///
/// ```
/// use fileupload::{Pool, model::identifier::Signer};
/// let dir = std::env::temp_dir().join(format!("pool-doc-{}", std::process::id()));
/// let pool = Pool::open(&dir, Signer::new(None)).unwrap();
/// let id = pool.create_identifier().unwrap();
/// let bucket = pool.access_upload_bucket(&id);
/// assert!(!bucket.is_complete().unwrap());
/// assert_eq!(bucket.status().unwrap().state, fileupload::model::status::State::Starting);
/// pool.clear_upload_bucket(&id).unwrap();
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    signer: Signer,
    /// Whether the pool may be on a filesystem whose clients cache names
    /// (a network filesystem): readers then list a bucket before they
    /// trust a name in it (see [`read_status_fresh`]).
    shared: bool,
    /// The uploads this process writes, answered from memory.
    live: Arc<Live>,
    /// Where a tus request answered before its hash was through leaves
    /// the hash for the next request (see [`Pool::with_lagging_hash`]).
    lagged: Option<Arc<resumable::LaggedHashes>>,
    /// How long an unfinished tus upload lives after its last write (see
    /// [`Pool::with_expiry`]).
    expire_after: Duration,
}

impl Pool {
    /// Opens the pool directory, creating it (mode 0700) when missing, and
    /// checks that it can be written.
    pub fn open(dir: impl AsRef<Path>, signer: Signer) -> Result<Pool> {
        let dir = dir.as_ref();
        let unusable = |what: &str, e: io::Error| {
            Error::internal(format!(
                "pool directory {}: cannot {what}: {e}",
                dir.display()
            ))
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unusable("create it", e))?;
        let dir = dir.canonicalize().map_err(|e| unusable("resolve it", e))?;
        // access(2) answers for our permissions and for a read-only mount
        // without writing anything: a CGI status request pays one syscall.
        let c_path = c_path(&dir).map_err(|e| unusable("resolve it", e))?;
        // SAFETY: a NUL-terminated path that lives across the call.
        if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            return Err(unusable("write in it", io::Error::last_os_error()));
        }
        let shared = !is_local_filesystem(&c_path);
        Ok(Pool {
            dir,
            signer,
            shared,
            live: Arc::default(),
            lagged: None,
            expire_after: resumable::DEFAULT_EXPIRE_AFTER,
        })
    }

    /// The pool of a process that outlives its requests (the daemon, the
    /// FastCGI responder): a tus request is answered once its bytes are on
    /// disk, while its last blocks are still being hashed, and the next
    /// request of the upload in this process goes on from that hash. A
    /// CGI process ends with its request, so it waits for the hash.
    pub(crate) fn with_lagging_hash(mut self) -> Pool {
        self.lagged = Some(Arc::default());
        self
    }

    /// The pool, with unfinished tus uploads expiring this long after
    /// their last write (`--expire-after`; 24 hours unless set).
    pub(crate) fn with_expiry(mut self, after: Duration) -> Pool {
        self.expire_after = after;
        self
    }

    /// Whether the pool may be on a network filesystem (see the field):
    /// a status read from it may then wait on other hosts.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    /// How long an unfinished tus upload lives after its last write.
    pub(crate) fn expire_after(&self) -> Duration {
        self.expire_after
    }

    /// A new identifier (see [`Signer::create`]).
    pub fn create_identifier(&self) -> Result<Identifier> {
        self.signer.create()
    }

    /// Checks an identifier as a client sent it (see [`Signer::verify`]).
    pub fn verify_identifier(&self, text: &str) -> Result<Identifier> {
        self.signer.verify(text)
    }

    /// The identifier as a client must send it.
    pub fn format_identifier(&self, id: &Identifier) -> String {
        self.signer.format(id)
    }

    /// A handle on one upload's bucket; nothing is read until asked.
    pub fn access_upload_bucket(&self, id: &Identifier) -> Bucket<'_> {
        Bucket {
            pool: self,
            id: id.clone(),
        }
    }

    /// Removes an upload. Unknown identifiers succeed too. An upload in
    /// progress is told to stop (its writer ends in state `error`) and is
    /// removed as soon as it has, or by its writer.
    pub fn clear_upload_bucket(&self, id: &Identifier) -> Result<()> {
        let dir = self.bucket_dir(id);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::disk("read the bucket", &e)),
            Ok(m) if !m.is_dir() => return Err(not_a_bucket(&dir)),
            Ok(_) => {}
        }
        match lock_existing(&dir, WRITER_LOCK_WAIT)? {
            Hold::Locked(lock, _) => return remove_bucket(&dir, lock),
            Hold::Gone => return remove_empty_dir(&dir),
            Hold::Busy => {}
        }
        match create_new(&dir.join(CLEARED)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::disk("mark the upload cleared", &e)),
        }
        match lock_existing(&dir, CLEAR_WAIT)? {
            Hold::Locked(lock, _) => remove_bucket(&dir, lock),
            // The writer removes the bucket itself once it sees the mark.
            Hold::Busy | Hold::Gone => Ok(()),
        }
    }

    /// Takes the bucket for a new upload, or fails with 409 when another
    /// writer, in this or any process, holds it. Whatever a finished upload
    /// left under this identifier is replaced.
    pub fn begin_upload(&self, id: &Identifier, size: Option<u64>) -> Result<Upload> {
        let dir = self.bucket_dir(id);
        let lock = self.lock_for_writing(id)?;
        clear_contents(&dir)?;
        let status = Status::begin(self.format_identifier(id), size);
        let mut upload = Upload {
            dir,
            live: Some(self.live.register(id, &status)),
            lock: Some(lock),
            status,
            published_at: Instant::now(),
            published_received: 0,
            shared: self.shared,
        };
        upload.publish(false)?;
        Ok(upload)
    }

    /// Records a failure that happened before an upload could start (a size
    /// over the limit, a malformed body) so that a polling client sees why;
    /// a finished upload stored under the identifier is left as it is.
    pub fn record_failure(&self, id: &Identifier, size: Option<u64>, err: &Error) -> Result<()> {
        if self.access_upload_bucket(id).status()?.state == State::Done {
            return Ok(());
        }
        let dir = self.bucket_dir(id);
        let _lock = self.lock_for_writing(id)?;
        clear_contents(&dir)?;
        let mut status = Status::begin(self.format_identifier(id), size);
        status.fail(err);
        write_status(&dir, &status, false)
    }

    /// Every bucket's status, ordered by identifier.
    pub fn list(&self) -> Result<Vec<Status>> {
        self.identifiers()?
            .iter()
            .map(|id| self.access_upload_bucket(id).status())
            .collect()
    }

    /// The pool's totals, read from every bucket's status now (see
    /// [`Pool::list`]): what any host sharing the pool reports alike.
    pub fn gauges(&self) -> Result<PoolGauges> {
        let mut gauges = PoolGauges::default();
        for status in self.list()? {
            if let Some(n) = State::ALL.iter().position(|s| *s == status.state) {
                gauges.buckets[n] += 1;
            }
            if status.state == State::Done {
                gauges.stored_bytes += status.files().iter().filter_map(|f| f.length).sum::<u64>();
            }
        }
        Ok(gauges)
    }

    /// Checks that the pool can be written and locked, for a health check:
    /// creates a probe file, locks it, checks that the lock keeps a second
    /// open of the file out, writes and flushes it, and removes it. Each
    /// probe has a random name of its own, so that the hosts sharing a pool
    /// can probe it at once without meeting; the name starts with `.`, so
    /// no probe is ever taken for a bucket.
    pub fn probe(&self) -> Result<()> {
        let suffix =
            unique_suffix().map_err(|e| Error::internal(format!("cannot name a probe: {e}")))?;
        let path = self.dir.join(format!(".probe-{suffix}"));
        let probed = probe_file(&path);
        let removed = fs::remove_file(&path);
        probed?;
        removed.map_err(|e| Error::disk("remove the health probe", &e))
    }

    /// Removes finished uploads whose status is older than `older_than`, and
    /// interrupted ones of any age; an unfinished tus upload goes by age,
    /// as a finished one; an upload that a live writer holds is never
    /// touched. Returns the identifiers removed.
    pub fn gc(&self, older_than: Duration) -> Result<Vec<Identifier>> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.sweep(true, |fresh| match &fresh.status {
            None => true,
            // An unfinished tus upload is judged by age, as a
            // finished one: its client may still resume it.
            Some(s) if s.state == State::Uploading && s.tus.is_none() => true,
            Some(s) if s.error.as_deref() == Some(INTERRUPTED) => true,
            Some(_) => fresh.modified.is_some_and(|t| t < cutoff),
        })
    }

    /// Removes every bucket that `stale` judges so on a verified read of
    /// its status, taken under its lock (a bucket a writer holds is
    /// skipped); with `leftovers`, also the buckets without a lock file.
    /// Returns the identifiers removed.
    fn sweep(&self, leftovers: bool, stale: impl Fn(&Fresh) -> bool) -> Result<Vec<Identifier>> {
        let mut removed = Vec::new();
        for id in self.identifiers()? {
            let dir = self.bucket_dir(&id);
            let lock = match lock_existing(&dir, GC_LOCK_WAIT)? {
                Hold::Locked(lock, _) => lock,
                Hold::Busy => continue,
                Hold::Gone => {
                    // A bucket without a lock file is a leftover of a writer
                    // that died before it could make one.
                    if leftovers && remove_empty_dir(&dir).is_ok() && !dir.exists() {
                        removed.push(id);
                    }
                    continue;
                }
            };
            // Judged only on a verified read: a document this host's client
            // still showed under the name could make a finished upload look
            // interrupted, or old.
            let fresh = read_status_fresh(&dir, self.shared)?;
            if fresh.verified && stale(&fresh) {
                remove_bucket(&dir, lock)?;
                removed.push(id);
            }
        }
        Ok(removed)
    }

    fn identifiers(&self) -> Result<Vec<Identifier>> {
        let mut ids: Vec<Identifier> = fs::read_dir(&self.dir)
            .map_err(|e| Error::disk("list the pool directory", &e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|entry| Identifier::parse_id(entry.file_name().to_str()?).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn bucket_dir(&self, id: &Identifier) -> PathBuf {
        // Only a validated ID ([A-Za-z0-9-]{1,64}) is ever joined here.
        self.dir.join(id.as_str())
    }

    /// Creates the bucket if needed and takes its lock for a writer.
    fn lock_for_writing(&self, id: &Identifier) -> Result<File> {
        let dir = self.bucket_dir(id);
        // A clear may remove the bucket between our mkdir and our lock; a
        // few rounds settle it.
        for _ in 0..16 {
            let Some(file) = self.make_bucket(&dir)? else {
                continue;
            };
            match try_lock_for(&file, true, WRITER_LOCK_WAIT)? {
                Locking::Taken => {}
                Locking::Busy => {
                    return Err(Error::conflict(
                        "an upload with this identifier is in progress",
                    ));
                }
                // Removed by a clear while we waited: make another.
                Locking::Removed => continue,
            }
            if is_current_lock(&dir, &file)? {
                return Ok(file);
            }
        }
        Err(Error::internal("the upload's bucket keeps being removed"))
    }

    /// Makes the bucket and its lock file unless they exist, and opens the
    /// lock file; `None` when a clear removed them meanwhile.
    ///
    /// On a network filesystem this is done under a lock of the pool's
    /// own: two GlusterFS clients making the same directory at the same
    /// instant can leave it with a different identity on each replica (a
    /// gfid split-brain, seen in `scripts/test-cluster.sh`'s race check),
    /// and every later access to it fails with EIO, the upload stored on
    /// one brick lost to all hosts. Made one host after the other, the
    /// second finds what the first made.
    fn make_bucket(&self, dir: &Path) -> Result<Option<File>> {
        let _creating = if self.shared {
            let lock = open_lock_file(&self.dir.join(CREATING))
                .map_err(|e| Error::disk("open the pool's lock", &e))?;
            match try_lock_for(&lock, true, CREATING_WAIT)? {
                Locking::Taken => {}
                Locking::Busy | Locking::Removed => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the pool is busy making buckets; try again",
                    ));
                }
            }
            Some(lock)
        } else {
            None
        };
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::disk("create the upload's bucket", &e)),
        }
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_bucket(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::disk("read the upload's bucket", &e)),
        }
        match open_lock(dir, true) {
            Ok(f) => Ok(Some(f)),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(Error::disk("open the bucket's lock", &e)),
        }
    }
}

/// The pool's totals, as [`Pool::gauges`] counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Buckets in each state, in the order of [`State::ALL`].
    pub buckets: [u64; State::ALL.len()],
    /// Bytes of the stored files of finished uploads (state `done`).
    pub stored_bytes: u64,
}

/// One upload's bucket, as [`Pool::access_upload_bucket`] gives it: the API
/// the original handed applications in the WSGI environ.
#[derive(Debug)]
pub struct Bucket<'p> {
    pool: &'p Pool,
    id: Identifier,
}

impl Bucket<'_> {
    /// The upload's status, read now. An upload whose writer died is
    /// reported (and recorded) as `error` / `upload interrupted`.
    pub fn status(&self) -> Result<Status> {
        if let Some(status) = self.pool.live.status(&self.id) {
            return Ok(status);
        }
        let dir = self.pool.bucket_dir(&self.id);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Status::unknown()),
            Err(e) => return Err(Error::disk("read the upload's bucket", &e)),
            Ok(m) if !m.is_dir() => return Err(not_a_bucket(&dir)),
            Ok(_) => {}
        }
        let shared = self.pool.shared;
        let Some(mut status) = read_status_fresh(&dir, shared)?.status else {
            return Ok(Status::unknown());
        };
        // A tus upload is `uploading` between its requests with no writer.
        if status.state == State::Uploading && status.tus.is_none() {
            status = check_writer(&dir, status, shared)?;
        }
        if status.state != State::Starting {
            status.identifier = Some(self.pool.format_identifier(&self.id));
        }
        Ok(status)
    }

    /// The status with each file's absolute `path`: the description handed
    /// to an application.
    pub fn description(&self) -> Result<Status> {
        let mut status = self.status()?;
        if status.state == State::Done {
            let dir = self.pool.bucket_dir(&self.id);
            for (n, file) in status.files.iter_mut().flatten().enumerate() {
                file.path = Some(dir.join(n.to_string()).to_string_lossy().into_owned());
            }
        }
        Ok(status)
    }

    /// The path of file `n` (0 is the first) once the upload is complete.
    pub fn filename(&self, n: usize) -> Result<Option<PathBuf>> {
        let status = self.status()?;
        if status.state != State::Done || n >= status.files().len() {
            return Ok(None);
        }
        Ok(Some(self.pool.bucket_dir(&self.id).join(n.to_string())))
    }

    /// Whether every file of the upload is stored.
    pub fn is_complete(&self) -> Result<bool> {
        Ok(self.status()?.is_complete())
    }
}

/// An upload being written: holds the bucket's lock until it is finished or
/// failed (or dropped, which fails it).
#[derive(Debug)]
pub struct Upload {
    dir: PathBuf,
    /// The upload in this process's memory; let go before the lock.
    live: Option<Registration>,
    lock: Option<File>,
    status: Status,
    published_at: Instant,
    published_received: u64,
    /// The pool is on a network filesystem: progress is published by time
    /// alone (see [`Upload::progress`]).
    shared: bool,
}

/// A file of an upload being received; see [`Upload::create_file`].
pub struct FileWriter {
    store: Store,
    index: usize,
}

impl FileWriter {
    /// Appends bytes to the file and to its hash.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.store.write(bytes)
    }
}

impl Upload {
    /// The status as it stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Notes that `received` body bytes have been read, publishing the
    /// status when 1 MiB or 250 ms have passed since the last time. Fails
    /// when the upload has been cleared meanwhile.
    ///
    /// On a network filesystem only the 250 ms count: a publish there
    /// costs a dozen round trips to the servers (about 25 ms on the
    /// GlusterFS volume of `scripts/bench` figure 8), on the thread that
    /// receives, and one per MiB held uploads to a fifth of what the volume
    /// takes. This process answers its own uploads' status from memory;
    /// the other hosts see progress at most 250 ms late, as they would
    /// have from a slow upload anyway.
    pub fn progress(&mut self, received: u64) -> Result<()> {
        self.status.received = Some(received);
        if let Some(live) = &self.live {
            live.received(received);
        }
        if due_by_bytes(self.shared, self.published_received, received)
            || self.published_at.elapsed() >= PUBLISH_INTERVAL
        {
            self.publish(false)?;
        }
        Ok(())
    }

    /// Starts file number `files().len()`, stored as `N.part` until complete.
    pub fn create_file(
        &mut self,
        field: &str,
        filename: &str,
        content_type: &str,
    ) -> Result<FileWriter> {
        let files = self.status.files.get_or_insert_with(Vec::new);
        let index = files.len();
        let path = self.dir.join(format!("{index}{PART}"));
        let file = create_new(&path).map_err(|e| Error::disk("create the uploaded file", &e))?;
        files.push(FileInfo {
            field: field.to_owned(),
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            length: None,
            sha256: None,
            path: None,
        });
        if index == 0 {
            self.status.filename = Some(filename.to_owned());
            self.status.content_type = Some(content_type.to_owned());
        }
        Ok(FileWriter {
            store: Store::new(file),
            index,
        })
    }

    /// Makes a file complete: flushed to disk, then renamed to its final
    /// name, so that no reader ever takes a partial file for a whole one.
    pub fn complete_file(&mut self, writer: FileWriter) -> Result<()> {
        let FileWriter { store, index } = writer;
        let (file, length, digest) = store.finish()?;
        drop(file);
        fs::rename(
            self.dir.join(format!("{index}{PART}")),
            self.dir.join(index.to_string()),
        )
        .map_err(|e| Error::disk("rename the uploaded file", &e))?;
        if let Some(info) = self.status.files.as_mut().and_then(|f| f.get_mut(index)) {
            info.length = Some(length);
            info.sha256 = Some(to_hex(digest.as_ref()));
        }
        self.publish(false)
    }

    /// Records a non-file form field.
    pub fn add_field(&mut self, name: String, value: String) {
        self.status
            .fields
            .get_or_insert_with(Default::default)
            .entry(name)
            .or_default()
            .push(value);
    }

    /// Ends the upload in state `done`, durably, and returns its description.
    pub fn finish(mut self) -> Result<Status> {
        if self.dir.join(CLEARED).exists() {
            let err = cleared_error();
            self.fail_inner(&err);
            return Err(err);
        }
        sync_dir(&self.dir)?;
        self.status.state = State::Done;
        write_status(&self.dir, &self.status, true)?;
        sync_dir(&self.dir)?;
        self.live = None;
        self.lock = None;
        Ok(self.status.clone())
    }

    /// Ends the upload in state `error` with `err`, removing its files. An
    /// upload that was cleared meanwhile is removed whole.
    pub fn fail(mut self, err: &Error) {
        self.fail_inner(err);
    }

    fn fail_inner(&mut self, err: &Error) {
        let Some(lock) = self.lock.take() else { return };
        if self.dir.join(CLEARED).exists() {
            self.live = None;
            let _ = remove_bucket(&self.dir, lock);
            return;
        }
        self.status.fail(err);
        let _ = clear_contents(&self.dir);
        let _ = write_status(&self.dir, &self.status, false);
        self.live = None;
        drop(lock);
    }

    fn publish(&mut self, durable: bool) -> Result<()> {
        if self.dir.join(CLEARED).exists() {
            return Err(cleared_error());
        }
        write_status(&self.dir, &self.status, durable)?;
        if let Some(live) = &self.live {
            live.published(&self.status);
        }
        self.published_at = Instant::now();
        self.published_received = self.status.received.unwrap_or(0);
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Reached only when a caller returned early without finishing or
        // failing the upload; the status must not stay `uploading`.
        if self.lock.is_some() {
            self.fail_inner(&Error::internal("upload abandoned"));
        }
    }
}

fn cleared_error() -> Error {
    Error::new(ErrorKind::Gone, "upload cleared")
}

fn not_a_bucket(dir: &Path) -> Error {
    Error::internal(format!(
        "{} is not a directory: refusing to follow it",
        dir.display()
    ))
}

enum Hold {
    /// The lock, and the listing of the bucket that showed it current.
    Locked(File, Listing),
    Busy,
    Gone,
}

/// Takes the exclusive lock of an existing bucket, waiting up to `wait`.
fn lock_existing(dir: &Path, wait: Duration) -> Result<Hold> {
    let file = match open_lock(dir, false) {
        Ok(f) => f,
        Err(e) if is_gone(&e) => return Ok(Hold::Gone),
        Err(e) => return Err(Error::disk("open the bucket's lock", &e)),
    };
    match try_lock_for(&file, true, wait)? {
        Locking::Taken => {}
        Locking::Busy => return Ok(Hold::Busy),
        Locking::Removed => return Ok(Hold::Gone),
    }
    match current_lock_listing(dir, &file)? {
        Some(listing) => Ok(Hold::Locked(file, listing)),
        None => Ok(Hold::Gone),
    }
}

/// The work of [`Pool::probe`] on its file; the files are closed on return.
fn probe_file(path: &Path) -> Result<()> {
    let mut file = create_new(path).map_err(|e| Error::disk("create a health probe", &e))?;
    if !matches!(try_lock_for(&file, true, Duration::ZERO)?, Locking::Taken) {
        return Err(Error::internal(
            "cannot lock a health probe nobody else knows",
        ));
    }
    let second = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::disk("open the health probe again", &e))?;
    match FileExt::try_lock_exclusive(&second) {
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
        Ok(()) => {
            return Err(Error::internal(
                "locks do not work: a locked probe was locked again",
            ));
        }
        Err(e) => return Err(Error::disk("lock the health probe again", &e)),
    }
    file.write_all(b"probe\n")
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::disk("write the health probe", &e))
}

/// A reader found `uploading`: is the writer still there?
///
/// A free lock alone does not prove the writer dead: a writer that has
/// just finished (or failed) has released it too, after writing its last
/// document, and the `uploading` in hand may be an earlier document that
/// this host's filesystem client still showed under the name. So the
/// verdict needs, in this order: the lock taken exclusively (no writer, no
/// other reader recording the same), the lock file still the bucket's (a
/// clear may have removed it, and a new writer made another), and the
/// status read again under the lock, fresh (see [`read_status_fresh`]),
/// still `uploading`. Only then is the upload interrupted, and recorded.
fn check_writer(dir: &Path, status: Status, shared: bool) -> Result<Status> {
    let file = match open_lock(dir, false) {
        Ok(f) => f,
        // No lock file under a status: the bucket is being removed, or this
        // host's client cannot resolve the name yet; or a brick still has
        // it as root's (see is_denied). No verdict either way.
        Err(e) if is_gone(&e) || (shared && is_denied(&e)) => return reread(dir, shared),
        Err(e) => return Err(Error::disk("open the bucket's lock", &e)),
    };
    // One try, no wait: a status read must never queue behind a writer. The
    // lock is also held, for a moment, by a reader recording an interrupted
    // upload; missing that only delays the news to the next poll.
    match try_lock_for(&file, false, Duration::ZERO)? {
        Locking::Taken => {}
        Locking::Busy => return Ok(status),
        Locking::Removed => return reread(dir, shared),
    }
    // Another reader records the verdict, or a new writer has come: only
    // report what the bucket says now.
    if FileExt::try_lock_exclusive(&file).is_err() || !is_current_lock(dir, &file)? {
        return reread(dir, shared);
    }
    let fresh = read_status_fresh(dir, shared)?;
    let Some(status) = fresh.status else {
        return Ok(Status::unknown());
    };
    // An unverified document may be one the writer has since replaced with
    // its last: no verdict on it, the next poll asks again.
    if status.state != State::Uploading || !fresh.verified {
        return Ok(status);
    }
    let status = interrupted(status);
    remove_files(dir)?;
    write_status(dir, &status, false)?;
    Ok(status)
}

/// The status as the bucket has it now, without a verdict on the writer:
/// what a reader reports when someone else is busy with the bucket.
fn reread(dir: &Path, shared: bool) -> Result<Status> {
    Ok(read_status_fresh(dir, shared)?
        .status
        .unwrap_or_else(Status::unknown))
}

fn interrupted(mut status: Status) -> Status {
    status.fail(&Error::internal(INTERRUPTED));
    status
}

/// What a reader found in a bucket.
struct Fresh {
    /// The status document; `None` when there is none (or the upload was
    /// cleared).
    status: Option<Status>,
    /// Whether the document read is the one the listing named (always,
    /// but on a filesystem that keeps changing it faster than we read).
    verified: bool,
    /// When the document read was written.
    modified: Option<SystemTime>,
}

/// How many times a reader lists and reads again before it settles for
/// what it has: each round is a listing and an open, and a writer replaces
/// the document at most a few times a millisecond.
const FRESH_TRIES: u32 = 20;

/// Reads the status document as the filesystem's server has it now, not
/// as a network client may still cache it under its name: lists the bucket
/// (which also refreshes the client's names), opens `status.json`, and
/// keeps the document only when the file opened is the one listed. Every
/// version of the document is a new file (see [`write_status`]), so a file
/// is never rewritten: the one listed, read whole, is the current status.
/// A file replaced meanwhile (`ENOENT`, `ESTALE` on open or read, another
/// inode) is read again. `cleared` is taken from the same listing.
///
/// On a local filesystem (`shared` false) a name always leads to the file
/// it names now, so the document is read by name: no listing, five system
/// calls fewer on every status request of a single host.
fn read_status_fresh(dir: &Path, shared: bool) -> Result<Fresh> {
    read_status_listed(dir, shared, None)
}

/// [`read_status_fresh`], going first by `listing` when given (one a lock
/// holder has just made) instead of listing the bucket again.
fn read_status_listed(dir: &Path, shared: bool, mut listing: Option<Listing>) -> Result<Fresh> {
    if !shared {
        return read_status_local(dir);
    }
    let mut last = None;
    let mut damaged = None;
    let mut denied = None;
    let mut empty = false;
    for round in 0..FRESH_TRIES {
        // At once, then after pauses that grow to 64 ms: about a second in
        // all, the time a network client keeps a name by default.
        if round >= 2 {
            thread::sleep(Duration::from_millis(1 << (round - 2).min(6)));
        }
        let listing = match listing.take().map_or_else(|| Listing::read(dir), Ok) {
            Ok(l) => l,
            Err(e) if is_gone(&e) => return Ok(none(true)),
            Err(e) if is_denied(&e) => {
                denied = Some(Error::disk("list the upload's bucket", &e));
                continue;
            }
            Err(e) => return Err(Error::disk("list the upload's bucket", &e)),
        };
        if listing.cleared {
            return Ok(none(true));
        }
        let Some(listed) = listing.status else {
            return Ok(none(true));
        };
        let (bytes, meta) = match read_nofollow(&dir.join(STATUS)) {
            Ok(read) => read,
            Err(e) if is_gone(&e) => continue,
            Err(e) if is_denied(&e) => {
                denied = Some(Error::disk("read the upload's status", &e));
                continue;
            }
            Err(e) => return Err(Error::disk("read the upload's status", &e)),
        };
        // Left by a power loss before a progress document reached the disk
        // (see replace_status), or a document not yet flushed by another
        // host's client: read again, and take it as none if it stays so.
        if bytes.is_empty() {
            if meta.ino() == listed && round >= 2 {
                return Ok(none(true));
            }
            empty = true;
            continue;
        }
        // A document cut short: another host's client had not written it
        // all out yet when it renamed it (GlusterFS' write-behind). Read
        // again; a document that stays damaged is an error.
        let status = match parse_status(&bytes) {
            Ok(status) => status,
            Err(e) => {
                damaged = Some(e);
                continue;
            }
        };
        if meta.ino() == listed {
            return Ok(Fresh {
                status: Some(status),
                verified: true,
                modified: meta.modified().ok(),
            });
        }
        // Replaced between our listing and our open, or this host's client
        // still resolves the name to an earlier document: round again.
        last = Some(status);
    }
    // Not verified: reported, never acted upon (see check_writer).
    if let Some(status) = last {
        return Ok(Fresh {
            status: Some(status),
            verified: false,
            modified: None,
        });
    }
    if let Some(e) = damaged.or(denied) {
        return Err(e);
    }
    if empty {
        return Ok(none(true));
    }
    Err(Error::internal(
        "the upload's status keeps going stale under its reader",
    ))
}

fn parse_status(bytes: &[u8]) -> Result<Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("the upload's status is damaged: {e}")))
}

/// [`read_status_fresh`] on a local filesystem: `cleared`, then the
/// document by name.
fn read_status_local(dir: &Path) -> Result<Fresh> {
    if dir.join(CLEARED).exists() {
        return Ok(none(true));
    }
    let (bytes, meta) = match read_nofollow(&dir.join(STATUS)) {
        Ok(read) => read,
        Err(e) if is_gone(&e) => return Ok(none(true)),
        Err(e) => return Err(Error::disk("read the upload's status", &e)),
    };
    // Left by a power loss before a progress document reached the disk
    // (see replace_status): there is no status to read.
    if bytes.is_empty() {
        return Ok(none(true));
    }
    Ok(Fresh {
        status: Some(parse_status(&bytes)?),
        verified: true,
        modified: meta.modified().ok(),
    })
}

/// Whether the filesystem at `path` is one whose names every process sees
/// alike at once (a local one), by its `statfs` type; any other, or one
/// that cannot be asked, is taken for a network filesystem, where readers
/// list before they trust a name.
fn is_local_filesystem(path: &std::ffi::CStr) -> bool {
    // ext2/3/4, XFS, Btrfs, tmpfs, ZFS, F2FS, overlayfs, ReiserFS, JFS.
    const LOCAL: [i64; 9] = [
        0xEF53,
        0x5846_5342,
        0x9123_683E,
        0x0102_1994,
        0x2FC1_2FC1,
        0xF2F5_2010,
        0x794C_7630,
        0x5265_4973,
        0x3153_464A,
    ];
    // SAFETY: statfs writes one struct of the size given into `fs`, which
    // is plain data; the path is NUL-terminated and outlives the call.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    LOCAL.contains(&(fs.f_type as i64))
}

fn none(verified: bool) -> Fresh {
    Fresh {
        status: None,
        verified,
        modified: None,
    }
}

/// The names of a bucket that readers and lock holders go by, with their
/// inode numbers, as one listing of the directory gives them. A listing is
/// answered by the filesystem's server, where a lookup by name may be
/// answered from a network client's cache (GlusterFS' FUSE client keeps
/// names and attributes about a second by default).
struct Listing {
    lock: Option<u64>,
    status: Option<u64>,
    cleared: bool,
    /// A tus writer has been asked to stop (`resumable::TAKEOVER`).
    takeover: bool,
}

impl Listing {
    fn read(dir: &Path) -> io::Result<Listing> {
        let mut listing = Listing {
            lock: None,
            status: None,
            cleared: false,
            takeover: false,
        };
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == LOCK {
                listing.lock = Some(entry.ino());
            } else if name == STATUS {
                listing.status = Some(entry.ino());
            } else if name == CLEARED {
                listing.cleared = true;
            } else if name == resumable::TAKEOVER {
                listing.takeover = true;
            }
        }
        Ok(listing)
    }
}

/// Refused on a network filesystem, where it passes: GlusterFS creates an
/// entry as root on each brick and gives it its owner after, and a lookup
/// from another client in between, or a self-heal that copied the entry
/// then, is refused by that brick (seen in `scripts/test-cluster.sh`'s
/// fleet check with every host running as the web user; upstream issue
/// 2357). A reader on the shared pool reads again, as for a stale name;
/// a refusal that lasts is reported.
fn is_denied(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EACCES)
}

/// Errors that mean the file, or the name we had for it, is gone: removed
/// (`ENOENT`), or replaced on another host of a network filesystem while
/// this host's client still had the old one (`ESTALE`).
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESTALE)
}

fn write_status(dir: &Path, status: &Status, durable: bool) -> Result<()> {
    let tmp = dir.join(STATUS_TMP);
    let target = dir.join(STATUS);
    let bytes = serde_json::to_vec(status)
        .map_err(|e| Error::internal(format!("cannot encode the status: {e}")))?;
    let write = || -> io::Result<()> {
        // Always a new inode: a reader may still hold an earlier document
        // open (see replace_status), and must never see it rewritten.
        let (mut f, tmp) = match create_new(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::remove_file(&tmp) {
                Ok(()) => (create_new(&tmp)?, tmp.clone()),
                // A `status.tmp` left by a writer that died on another host
                // of a network filesystem, which this host's client cannot
                // remove by name yet (GlusterFS answers ENOENT for about two
                // seconds): write under a name of our own instead. Whatever
                // the bucket holds but its lock goes with it (clear_contents).
                Err(e) if is_gone(&e) => {
                    let own = dir.join(format!("{STATUS_TMP}.{}", unique_suffix()?));
                    (create_new(&own)?, own)
                }
                Err(e) => return Err(e),
            },
            other => (other?, tmp.clone()),
        };
        f.write_all(&bytes)?;
        if durable {
            f.sync_all()?;
            return fs::rename(&tmp, &target);
        }
        drop(f);
        replace_status(&tmp, &target)
    };
    // On a network filesystem this host's client may still hold a name
    // another host has since replaced (`status.tmp` left by a writer that
    // died, `status.json`): the call then fails with ENOENT or ESTALE. A
    // listing refreshes the client's names; then the write is done again,
    // whole, from a new file.
    let mut tries = 0;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if is_gone(&e) && tries < STALE_TRIES => {
                tries += 1;
                let _ = Listing::read(dir);
                if tries > 2 {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            Err(e) => return Err(Error::disk("write the upload's status", &e)),
        }
    }
}

/// A random name part, for a temporary file no other writer uses.
fn unique_suffix() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(to_hex(&bytes))
}

/// How many times a write that met a stale name is done again.
const STALE_TRIES: u32 = 10;

/// Puts the document at `tmp` in place of `target` atomically, for progress
/// published up to a thousand times a second. A plain rename over an
/// existing file makes ext4 (`auto_da_alloc`) write the new file out at
/// once: measured at about 1 ms a publish, the largest single cost of a
/// fast upload. Exchanging the two names does not, and removing the old
/// document afterwards leaves a reader that has it open with a whole copy.
/// The price: after a power loss (not a crash of the process) the last
/// progress document may be empty; readers take an empty status as none.
#[cfg(target_os = "linux")]
fn replace_status(tmp: &Path, target: &Path) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set once a filesystem refused the exchange (GlusterFS FUSE answers
    // EINVAL): asking again costs a round trip per document for nothing.
    static REFUSED: AtomicBool = AtomicBool::new(false);
    if REFUSED.load(Ordering::Relaxed) {
        return fs::rename(tmp, target);
    }
    let (from, to) = (c_path(tmp)?, c_path(target)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return match fs::remove_file(tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        REFUSED.store(true, Ordering::Relaxed);
    }
    // No document yet (ENOENT), or a filesystem without exchange.
    fs::rename(tmp, target)
}

/// A path as the C calls take it.
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

#[cfg(not(target_os = "linux"))]
fn replace_status(tmp: &Path, target: &Path) -> io::Result<()> {
    fs::rename(tmp, target)
}

/// Removes everything in a bucket but its lock (whose holder we are).
fn clear_contents(dir: &Path) -> Result<()> {
    remove_entries(dir, |name| name != LOCK)
}

/// What an interrupted upload leaves: its status document, and nothing
/// that could pass for a stored file (a file it had completed before it
/// was cut off is no upload's file either).
fn remove_files(dir: &Path) -> Result<()> {
    remove_entries(dir, |name| name != LOCK && name != STATUS)
}

fn remove_entries(dir: &Path, selected: impl Fn(&str) -> bool) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed whole meanwhile (by the writer of a cleared upload, on
        // this host or another): nothing is left to remove.
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(Error::disk("list the upload's bucket", &e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(Error::disk("list the upload's bucket", &e)),
        };
        let name = entry.file_name();
        if !selected(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        // A directory nobody of ours made: remove it without following links.
        let result = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        match result {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(Error::disk("remove a file of the upload", &e)),
        }
    }
    Ok(())
}

/// Removes a bucket whose lock we hold: its contents, the lock, the directory.
fn remove_bucket(dir: &Path, lock: File) -> Result<()> {
    clear_contents(dir)?;
    match fs::remove_file(dir.join(LOCK)) {
        Ok(()) => {}
        Err(e) if is_gone(&e) => {}
        Err(e) => return Err(Error::disk("remove the bucket's lock", &e)),
    }
    drop(lock);
    remove_empty_dir(dir)
}

fn remove_empty_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        // A new writer has already come: the bucket is its now.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::disk("remove the upload's bucket", &e)),
    }
}

fn open_lock(dir: &Path, create: bool) -> io::Result<File> {
    if create {
        return open_lock_file(&dir.join(LOCK));
    }
    lock_options().open(dir.join(LOCK))
}

/// Opens a lock file, making it when missing.
fn open_lock_file(path: &Path) -> io::Result<File> {
    lock_options().create(true).open(path)
}

fn lock_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// Whether the lock file we hold is still the one at the bucket's path (a
/// clear may have removed it, and a new writer made another, meanwhile).
/// Asked of a listing, not of a lookup by name: a network client may still
/// show a removed lock file under the name, and a lock taken on a removed
/// file excludes nobody (GlusterFS even grants it while its holder has it).
fn is_current_lock(dir: &Path, file: &File) -> Result<bool> {
    Ok(current_lock_listing(dir, file)?.is_some())
}

/// [`is_current_lock`], giving the listing that showed it: a lock holder
/// reads the bucket from it instead of listing it again, a round trip to
/// the servers of a network filesystem.
fn current_lock_listing(dir: &Path, file: &File) -> Result<Option<Listing>> {
    let held = match file.metadata() {
        Ok(m) => m,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(Error::disk("read the bucket's lock", &e)),
    };
    match Listing::read(dir) {
        Ok(listing) => Ok((listing.lock == Some(held.ino())).then_some(listing)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(Error::disk("read the bucket's lock", &e)),
    }
}

/// How a lock attempt ended.
enum Locking {
    Taken,
    /// Someone else holds it.
    Busy,
    /// The lock file was removed under us (GlusterFS answers a lock on a
    /// removed file with `ENOENT`).
    Removed,
}

/// Tries a lock until `wait` has passed.
fn try_lock_for(file: &File, exclusive: bool, wait: Duration) -> Result<Locking> {
    let start = Instant::now();
    loop {
        let result = if exclusive {
            FileExt::try_lock_exclusive(file)
        } else {
            FileExt::try_lock_shared(file)
        };
        match result {
            Ok(()) => return Ok(Locking::Taken),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                if start.elapsed() >= wait {
                    return Ok(Locking::Busy);
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) if is_gone(&e) => return Ok(Locking::Removed),
            Err(e) => return Err(Error::disk("lock the upload's bucket", &e)),
        }
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A file's bytes and its metadata, both from the file opened.
fn read_nofollow(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut f, &mut bytes)?;
    Ok((bytes, meta))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::disk("flush the upload's bucket", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_filesystems_are_told_from_others() {
        let path = |p: &str| c_path(Path::new(p)).unwrap();
        // Where the tests run (ext4 here) and a tmpfs: local.
        assert!(is_local_filesystem(&path(
            &std::env::temp_dir().to_string_lossy()
        )));
        assert!(is_local_filesystem(&path("/dev/shm")));
        // Anything else, or a path that cannot be asked, lists first.
        assert!(!is_local_filesystem(&path("/proc")));
        assert!(!is_local_filesystem(&path("/nonexistent/pool")));
    }
}
