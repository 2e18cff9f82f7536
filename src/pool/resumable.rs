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

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ring::digest;

use super::{
    CLEARED, Hold, PUBLISH_BYTES, PUBLISH_INTERVAL, Pool, WRITER_LOCK_WAIT, clear_contents,
    cleared_error, create_new, is_gone, lock_existing, read_status_fresh, remove_bucket, sync_dir,
    write_status,
};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::identifier::{Identifier, to_hex};
use crate::model::status::{DEFAULT_CONTENT_TYPE, FileInfo, State, Status, TusRecord};
use crate::model::tus::Metadata;

/// The data file's name while it is being received.
const DATA_PART: &str = "0.part";
/// The data file's name once complete.
const DATA: &str = "0";
/// The form field name a tus upload's file is described under: tus has
/// no form, and `file` is the name the curl examples of the README use.
const FIELD: &str = "file";
/// Bytes hashed at a time when an upload completes.
const HASH_BLOCK: usize = 1 << 20;
/// The mark a request leaves in the bucket to ask the writer to stop.
const TAKEOVER: &str = "takeover";
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
}

impl Pool {
    /// Creates a tus upload under a new identifier: its bucket, an empty
    /// data file, and its status, durably. The upload is returned held, so
    /// that a body sent with the creation can be written at once.
    pub(crate) fn create_resumable(
        &self,
        id: &Identifier,
        length: Option<u64>,
        metadata: &Metadata,
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
        });
        write_status(&dir, &status, true)?;
        sync_dir(&dir)?;
        Ok(Resumable::new(dir, lock, Some(file), status))
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
        let lock = match hold {
            Hold::Locked(lock) => lock,
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
        // A mark left for an earlier writer is not for this one.
        match std::fs::remove_file(dir.join(TAKEOVER)) {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(Error::disk("remove the takeover mark", &e)),
        }
        let status = read_status_fresh(&dir, self.shared)?
            .status
            .filter(|s| s.tus.is_some())
            .ok_or_else(no_upload)?;
        match status.state {
            State::Done => Ok(Resumable::new(dir, lock, None, status)),
            State::Uploading => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(dir.join(DATA_PART))
                    .map_err(|e| Error::disk("open the uploaded file", &e))?;
                let mut upload = Resumable::new(dir, lock, Some(file), status);
                upload.settle()?;
                Ok(upload)
            }
            State::Starting | State::Error => Err(no_upload()),
        }
    }

    /// What `HEAD` answers for a tus upload; 404 when there is none.
    pub(crate) fn resumable_info(&self, id: &Identifier) -> Result<Info> {
        let status = self.access_upload_bucket(id).status()?;
        let Some(tus) = status.tus.clone() else {
            return Err(no_upload());
        };
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
        })
    }
}

fn no_upload() -> Error {
    Error::not_found("no such upload")
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

/// A tus upload held for writing; see the module documentation. Dropped
/// without [`Resumable::save`], it saves what it has all the same.
#[derive(Debug)]
pub(crate) struct Resumable {
    dir: PathBuf,
    lock: Option<File>,
    /// `None` once the upload is complete.
    file: Option<File>,
    status: Status,
    published_at: Instant,
    published_received: u64,
}

impl Resumable {
    fn new(dir: PathBuf, lock: File, file: Option<File>, status: Status) -> Resumable {
        let received = status.received.unwrap_or(0);
        Resumable {
            dir,
            lock: Some(lock),
            file,
            status,
            published_at: Instant::now(),
            published_received: received,
        }
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

    /// Bytes stored so far.
    pub(crate) fn offset(&self) -> u64 {
        self.status.received.unwrap_or(0)
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
        if let Some(mut file) = self.file.as_ref() {
            file.write_all(bytes)
                .map_err(|e| Error::disk("write the uploaded file", &e))?;
        }
        self.status.received = Some(end);
        // `received` may have gone back (settle, rewind) below what was
        // published: that is no progress to count.
        if end.saturating_sub(self.published_received) >= PUBLISH_BYTES
            || self.published_at.elapsed() >= PUBLISH_INTERVAL
        {
            if let Some(why) = self.stop_watch().why() {
                return Err(why);
            }
            write_status(&self.dir, &self.status, false)?;
            self.published_at = Instant::now();
            self.published_received = end;
        }
        Ok(())
    }

    /// Sets the upload back to `offset` (no further than where it is),
    /// cutting off the bytes after it: a chunk that failed its checksum is
    /// not kept.
    pub(crate) fn rewind(&mut self, offset: u64) -> Result<()> {
        let offset = offset.min(self.offset());
        if let Some(mut file) = self.file.as_ref() {
            file.set_len(offset)
                .and_then(|()| file.seek(SeekFrom::Start(offset)))
                .map_err(|e| Error::disk("cut the uploaded file", &e))?;
        }
        self.status.received = Some(offset);
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
        if self.length() == Some(self.offset()) {
            self.complete()?;
        } else {
            write_status(&self.dir, &self.status, true)?;
        }
        drop(lock);
        Ok(self.status.clone())
    }

    fn complete(&mut self) -> Result<()> {
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
        if length != self.offset() {
            return Err(Error::internal(format!(
                "the uploaded file holds {length} bytes where {} were stored",
                self.offset()
            )));
        }
        std::fs::rename(self.dir.join(DATA_PART), self.dir.join(DATA))
            .map_err(|e| Error::disk("rename the uploaded file", &e))?;
        self.status.files = Some(vec![FileInfo {
            field: FIELD.to_owned(),
            filename: self.status.filename.clone().unwrap_or_default(),
            content_type: self.status.content_type.clone().unwrap_or_default(),
            length: Some(length),
            sha256: Some(to_hex(context.finish().as_ref())),
            path: None,
        }]);
        self.status.state = State::Done;
        sync_dir(&self.dir)?;
        write_status(&self.dir, &self.status, true)?;
        sync_dir(&self.dir)
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
