//! Storing one uploaded file: its bytes onto the disk and into its SHA-256,
//! behind [`crate::pool::FileWriter`] (a multipart upload's files) and
//! [`crate::pool::resumable::Resumable`] (a tus request's bytes).
//!
//! A small file is gathered in memory, then hashed and written when it is
//! complete. A large one goes through a pipeline of three threads, each
//! with its own block of at most [`BLOCK`] bytes at a time: the receiving
//! thread fills blocks, a hashing thread hashes them, and a writing thread
//! writes them with direct I/O (`O_DIRECT`); whichever of the two is done
//! with a block last hands it back to be filled again, and neither waits
//! for the other, so that the file can be whole before the hash is through
//! ([`Store::finish_lagging`]). The profile of the simple way (hash, then a buffered
//! write, on the receiving thread) showed SHA-256 at about 40% of the time
//! and the kernel's copy into the page cache and its bookkeeping at about
//! 30%; hashing beside the receiving thread takes the first off its path,
//! and direct I/O the second: the disk reads the block where it is, and
//! the final flush has almost nothing left to write. Memory stays bounded:
//! at most [`BLOCKS`] blocks per file in flight.
//!
//! Direct I/O wants file offsets and lengths aligned to [`ALIGN`]. A file
//! appended to from an unaligned offset (a tus upload resumed after a
//! broken connection) first gets a shorter block that ends aligned, written
//! through the page cache, and direct blocks from there on; so does a
//! block sent before it is full ([`Store::flush_stale`]). Where direct I/O
//! is refused (tmpfs, some network filesystems, an alignment the device
//! wants larger than ours), writes go through the page cache as before;
//! where no thread can be started, the receiving thread hashes and writes
//! each block itself. The result on disk is the same either way.
//!
//! [`Store::written`] counts the bytes that have reached the file, which
//! is what a resumable upload may publish as received: bytes still in a
//! block would be lost with the process.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SendError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ring::digest;

use crate::model::error::{Error, Result};

/// Bytes per block: one direct write, one hashing step.
pub const BLOCK: usize = 1 << 20;
/// Blocks in flight per file: one filling, one hashing, one writing, one
/// waiting. `BLOCKS * BLOCK` is what a large file holds in memory.
pub const BLOCKS: usize = 4;
/// Direct I/O wants buffers, lengths and file offsets aligned to the
/// device's logical block; 4096 covers every common one.
const ALIGN: usize = 4096;

/// What a [`Store`] hashes with: `ring`'s SHA-256 for a multipart upload's
/// files, and for a tus upload `sha2`'s, whose state can be carried from
/// one request to the next (or none, when the state was lost and the file
/// is read again at completion).
pub trait Hasher: Send + 'static {
    /// Hashes `bytes` after those given before.
    fn update(&mut self, bytes: &[u8]);
}

impl Hasher for digest::Context {
    fn update(&mut self, bytes: &[u8]) {
        digest::Context::update(self, bytes);
    }
}

impl Hasher for Option<sha2::Sha256> {
    fn update(&mut self, bytes: &[u8]) {
        if let Some(hash) = self {
            sha2::Digest::update(hash, bytes);
        }
    }
}

/// The hash of a file's bytes as [`Store::finish_lagging`] leaves it:
/// known, or still being computed by the store's hashing thread, which
/// gives it back when joined.
pub enum Finished<H> {
    /// Every byte given is hashed.
    Done(H),
    /// The hashing thread is still at it.
    Hashing(Hashing<H>),
}

/// What the hashing thread runs with the hash once it has hashed the last
/// block (see [`Store::finish_lagging`]).
pub type Then<H> = Box<dyn FnOnce(&H) + Send>;

/// A block of `len` bytes starting at an [`ALIGN`]ed address, without
/// `unsafe`: the aligned window of a slightly larger vector.
struct Block {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new(len: usize) -> Block {
        // Zeroed memory comes straight from the system: pages untouched
        // by a small file cost nothing.
        let mem = vec![0u8; len + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Block { mem, start, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }
}

/// A filled block on its way through the pipeline.
struct Piece {
    block: Block,
    /// Bytes of the block to write.
    len: usize,
    /// Whether the piece may be written with direct I/O: it starts at an
    /// aligned file offset and its length is aligned.
    aligned: bool,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        &self.block.bytes()[..self.len]
    }
}

/// The threads of a large file. Dropped before it is finished (the upload
/// failed), it still waits for them: they stop within a few blocks, and no
/// write reaches the file after the upload has been failed.
struct Pipeline<H> {
    to_hash: Option<SyncSender<Arc<Piece>>>,
    to_write: Option<SyncSender<Arc<Piece>>>,
    free: Receiver<Block>,
    /// Blocks made so far; no more than the store's `blocks`.
    made: usize,
    hasher: Option<Hashing<H>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    /// Run by the hashing thread with the hash when it is through.
    then: Arc<Mutex<Option<Then<H>>>>,
}

/// What the hashing thread gives back: the hash, or `None` if it was
/// never sent it.
pub type Hashing<H> = JoinHandle<Option<H>>;

/// One file being stored; see the module documentation.
pub struct Store<H: Hasher = digest::Context> {
    file: File,
    block: Option<Block>,
    fill: usize,
    /// Bytes per block, and blocks in flight at most: [`BLOCK`] and
    /// [`BLOCKS`] unless [`Store::with_blocks`] said otherwise.
    block_len: usize,
    blocks: usize,
    /// Bytes the current block takes before it is sent: `block_len`, less
    /// what brings the file offset back to an aligned one.
    target: usize,
    /// The file offset where the current block begins.
    at: u64,
    /// When the current block got its first byte.
    since: Instant,
    pipeline: Option<Pipeline<H>>,
    /// No thread could be started: blocks are hashed and written here.
    alone: bool,
    /// The hash of every byte given; `None` while the pipeline runs (its
    /// hashing thread has it).
    context: Option<H>,
    length: u64,
    /// Bytes that have reached the file.
    written: Arc<AtomicU64>,
    /// Told by the writing thread how many bytes have reached the file.
    on_written: Option<OnWritten>,
}

/// What the writing thread tells after each block: the bytes that have
/// reached the file so far ([`Store::written`]).
pub type OnWritten = Arc<dyn Fn(u64) + Send + Sync>;

impl<H: Hasher> std::fmt::Debug for Store<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("length", &self.length)
            .field("written", &self.written())
            .field("threads", &self.pipeline.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stores into `file`, which is new and empty.
    pub fn new(file: File) -> Store {
        Store::append(file, 0, digest::Context::new(&digest::SHA256))
    }

    /// Writes what is left, flushes the file to disk and returns its
    /// length and SHA-256.
    pub fn finish(self) -> Result<(File, u64, digest::Digest)> {
        let (file, length, context) = self.finish_hash()?;
        file.sync_data()
            .map_err(|e| Error::disk("flush the uploaded file", &e))?;
        Ok((file, length, context.finish()))
    }
}

impl<H: Hasher> Store<H> {
    /// Appends to `file` from where it stands, `at` bytes from its start;
    /// `hash` is the hash of what it holds before (a resumable upload's
    /// earlier requests).
    pub fn append(file: File, at: u64, hash: H) -> Store<H> {
        Store {
            file,
            block: None,
            fill: 0,
            block_len: BLOCK,
            blocks: BLOCKS,
            target: BLOCK,
            at,
            since: Instant::now(),
            pipeline: None,
            alone: false,
            context: Some(hash),
            length: 0,
            written: Arc::new(AtomicU64::new(0)),
            on_written: None,
        }
    }

    /// Blocks of `len` bytes (a multiple of 4096), at most `count` in
    /// flight, instead of [`BLOCK`] and [`BLOCKS`]; given before the first
    /// write. Smaller blocks shorten the wait for the last one when the
    /// file ends, at some cost in throughput.
    pub fn with_blocks(mut self, len: usize, count: usize) -> Store<H> {
        if self.length == 0 && len >= ALIGN && len.is_multiple_of(ALIGN) && count >= 2 {
            self.block_len = len;
            self.target = len;
            self.blocks = count;
        }
        self
    }

    /// Has the writing thread call `tell` after each block it wrote, with
    /// [`Store::written`]: a resumable upload publishes its progress from
    /// there while its client is silent. Given before the first write.
    pub fn on_written(mut self, tell: OnWritten) -> Store<H> {
        self.on_written = Some(tell);
        self
    }

    /// Bytes given to the store so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Bytes given to the store that have reached the file (see the
    /// module documentation).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Appends bytes to the file.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.fill == 0 {
                // Back to an aligned offset at the end of this block.
                self.target = self.block_len - (self.at % ALIGN as u64) as usize;
                self.since = Instant::now();
            }
            let block = match self.block.as_mut() {
                Some(block) => block,
                None => {
                    let block = self.next_block()?;
                    self.block.insert(block)
                }
            };
            let n = bytes.len().min(self.target - self.fill);
            block.bytes_mut()[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            self.length += n as u64;
            bytes = &bytes[n..];
            if self.fill == self.target {
                self.send_block()?;
            }
        }
        Ok(())
    }

    /// Writes the block being filled to the file, full or not, once it has
    /// waited `age` since its first byte: bytes that arrive slowly reach
    /// the file (and [`Store::written`]) without waiting for a whole
    /// block. The threads are stopped first (a block that waited that long
    /// is behind every other), and started again by the next whole block.
    pub fn flush_stale(&mut self, age: Duration) -> Result<()> {
        if self.fill > 0 && self.since.elapsed() >= age {
            self.write_through()?;
        }
        Ok(())
    }

    /// Writes what is left and returns the file, the bytes given, and the
    /// hash; the file is not flushed.
    pub fn finish_hash(mut self) -> Result<(File, u64, H)> {
        self.write_through()?;
        let context = self.context.take().ok_or_else(hash_lost)?;
        Ok((self.file, self.length, context))
    }

    /// Writes what is left and returns the file and the bytes given once
    /// every byte has reached the file, without waiting for the hash: the
    /// hashing thread may still be at the last blocks, and runs `then`
    /// with the hash when it is through. A request whose answer needs only
    /// its bytes on disk (a tus PATCH) is answered meanwhile. `then` is not
    /// run when no thread was hashing (the hash is `Done` then).
    pub fn finish_lagging(mut self, then: Then<H>) -> Result<(File, u64, Finished<H>)> {
        if self.pipeline.is_none() {
            let (file, length, context) = self.finish_hash()?;
            return Ok((file, length, Finished::Done(context)));
        }
        // The block being filled goes through the threads as well: the
        // hash takes it after the blocks before it.
        if self.fill > 0 {
            self.send_block()?;
        }
        let Some(mut pipeline) = self.pipeline.take() else {
            return Err(self.stopped());
        };
        if let Ok(mut slot) = pipeline.then.lock() {
            *slot = Some(then);
        }
        let hashing = pipeline.close()?.ok_or_else(hash_lost)?;
        Ok((self.file, self.length, Finished::Hashing(hashing)))
    }

    /// Waits for the threads to be through, then writes and hashes the
    /// block being filled here: every byte given is then in the file, and
    /// the hash in `context`.
    fn write_through(&mut self) -> Result<()> {
        if let Some(mut pipeline) = self.pipeline.take() {
            self.context = Some(pipeline.finish()?);
        }
        // What is left is not a whole aligned block: it goes through the
        // page cache.
        set_direct(&self.file, false).map_err(|e| write_error(&e))?;
        if let Some(block) = self.block.as_ref() {
            let tail = &block.bytes()[..self.fill];
            self.context.as_mut().ok_or_else(hash_lost)?.update(tail);
            self.file.write_all(tail).map_err(|e| write_error(&e))?;
            self.written.fetch_add(tail.len() as u64, Ordering::Release);
            self.at += self.fill as u64;
            self.fill = 0;
        }
        Ok(())
    }

    /// A block to fill: one the writing thread is done with, else a new
    /// one while the pipeline has fewer than [`BLOCKS`], else the next one
    /// the writing thread is done with. A file that arrives no faster than
    /// the disk takes it never has more than two.
    fn next_block(&mut self) -> Result<Block> {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(Block::new(self.block_len));
        };
        if let Ok(block) = pipeline.free.try_recv() {
            return Ok(block);
        }
        if pipeline.made < self.blocks {
            pipeline.made += 1;
            return Ok(Block::new(self.block_len));
        }
        match pipeline.free.recv() {
            Ok(block) => Ok(block),
            // The writing thread stopped: it says why.
            Err(_) => Err(self.stopped()),
        }
    }

    fn send_block(&mut self) -> Result<()> {
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let piece = Piece {
            block,
            len: self.fill,
            aligned: self.at.is_multiple_of(ALIGN as u64) && self.fill.is_multiple_of(ALIGN),
        };
        self.at += self.fill as u64;
        self.fill = 0;
        if self.pipeline.is_none() && !self.alone {
            let context = self.context.take().ok_or_else(hash_lost)?;
            let started = Pipeline::start(
                &self.file,
                context,
                Arc::clone(&self.written),
                self.blocks,
                self.on_written.clone(),
            );
            match started {
                Ok(pipeline) => self.pipeline = Some(pipeline),
                // Out of threads: slower, but the upload goes on.
                Err(Some(context)) => {
                    self.context = Some(context);
                    self.alone = true;
                }
                Err(None) => return Err(hash_lost()),
            }
        }
        if self.alone {
            self.context
                .as_mut()
                .ok_or_else(hash_lost)?
                .update(piece.bytes());
            set_direct(&self.file, false).map_err(|e| write_error(&e))?;
            self.file
                .write_all(piece.bytes())
                .map_err(|e| write_error(&e))?;
            self.written.fetch_add(piece.len as u64, Ordering::Release);
            // Filled again from the start.
            self.block = Some(piece.block);
            return Ok(());
        }
        // Hashed and written at once, each thread on its own.
        let piece = Arc::new(piece);
        let sent = self.pipeline.as_ref().is_some_and(|p| {
            let (Some(to_hash), Some(to_write)) = (&p.to_hash, &p.to_write) else {
                return false;
            };
            to_hash.send(Arc::clone(&piece)).is_ok() && to_write.send(piece).is_ok()
        });
        if sent { Ok(()) } else { Err(self.stopped()) }
    }

    /// The error that stopped the pipeline.
    fn stopped(&mut self) -> Error {
        match self.pipeline.take() {
            Some(mut pipeline) => match pipeline.finish() {
                Err(e) => e,
                Ok(_) => Error::internal("the file storing threads stopped"),
            },
            None => Error::internal("the file storing threads stopped"),
        }
    }
}

impl<H: Hasher> Pipeline<H> {
    /// The threads, the hash going on from `context`; the context back
    /// when they cannot be started.
    fn start(
        file: &File,
        context: H,
        written: Arc<AtomicU64>,
        blocks: usize,
        on_written: Option<OnWritten>,
    ) -> std::result::Result<Pipeline<H>, Option<H>> {
        let Ok(out) = file.try_clone() else {
            return Err(Some(context));
        };
        let (to_hash, hash_queue) = sync_channel::<Arc<Piece>>(1);
        let (to_write, write_queue) = sync_channel::<Arc<Piece>>(1);
        let (give_back, free) = sync_channel::<Block>(blocks);
        // A block is filled again once both threads are done with it:
        // whichever lets go of it last gives it back. Neither waits for
        // the other, so the file may be whole before the hash is through
        // (`Store::finish_lagging`).
        let writer_gives_back = give_back.clone();
        let writer = thread::Builder::new().name("store".into()).spawn(move || {
            let mut mode = Mode::default();
            for piece in write_queue {
                mode.write(&out, &piece)?;
                let total =
                    written.fetch_add(piece.len as u64, Ordering::AcqRel) + piece.len as u64;
                if let Some(piece) = Arc::into_inner(piece) {
                    // The receiving thread may have stopped taking blocks.
                    let _ = writer_gives_back.send(piece.block);
                }
                if let Some(tell) = &on_written {
                    tell(total);
                }
            }
            Ok(())
        });
        let Ok(writer) = writer else {
            return Err(Some(context));
        };
        // The context is sent once the thread runs, so that it is still
        // here if the thread cannot be started.
        let (start, started) = sync_channel::<H>(1);
        let then: Arc<Mutex<Option<Then<H>>>> = Arc::new(Mutex::new(None));
        let then_for_thread = Arc::clone(&then);
        let hasher = thread::Builder::new().name("sha256".into()).spawn(move || {
            crate::pool::priority::lower();
            let mut context = started.recv().ok()?;
            for piece in hash_queue {
                context.update(piece.bytes());
                if let Some(piece) = Arc::into_inner(piece) {
                    let _ = give_back.send(piece.block);
                }
            }
            if let Some(then) = then_for_thread.lock().ok().and_then(|mut t| t.take()) {
                then(&context);
            }
            Some(context)
        });
        let hasher = match hasher {
            Ok(hasher) => match start.send(context) {
                Ok(()) => hasher,
                Err(SendError(context)) => return Err(Some(context)),
            },
            Err(_) => {
                // The writer ends with its queue closed.
                drop(to_write);
                let _ = writer.join();
                return Err(Some(context));
            }
        };
        Ok(Pipeline {
            to_hash: Some(to_hash),
            to_write: Some(to_write),
            free,
            made: 1,
            hasher: Some(hasher),
            writer: Some(writer),
            then,
        })
    }

    /// Closes the queues, which ends both threads once they are through,
    /// and waits for the writing one: every block sent is then in the
    /// file. Gives back the hashing thread, which may still be at it; it is
    /// not waited for even when the writing failed (its `then` may wait on
    /// the caller).
    fn close(&mut self) -> Result<Option<Hashing<H>>> {
        self.to_hash = None;
        self.to_write = None;
        let hashing = self.hasher.take();
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) => Ok(hashing),
            Some(Ok(Err(e))) => Err(write_error(&e)),
            _ => Err(Error::internal("the file writing thread failed")),
        }
    }

    /// Waits for every block sent to be hashed and written.
    fn finish(&mut self) -> Result<H> {
        match self.close()?.map(JoinHandle::join) {
            Some(Ok(Some(context))) => Ok(context),
            _ => Err(hash_lost()),
        }
    }
}

fn hash_lost() -> Error {
    Error::internal("the hashing thread failed")
}

impl<H> Drop for Pipeline<H> {
    fn drop(&mut self) {
        // Closing the queues ends both threads once they are through.
        self.to_hash = None;
        self.to_write = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(hasher) = self.hasher.take() {
            let _ = hasher.join();
        }
    }
}

/// Gives the memory an upload freed back to the system. glibc keeps freed
/// blocks in the arena of the thread that freed them, and a daemon has
/// dozens of threads: without this, after bursts of concurrent uploads its
/// resident size stayed up to 19 MiB above where it started
/// (`scripts/bench`, figure 4). Measured at 35 µs to 2 ms a call, once per
/// upload.
pub fn release_memory() {
    // SAFETY: malloc_trim takes no pointer and only returns free memory.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

fn write_error(e: &io::Error) -> Error {
    Error::disk("write the uploaded file", e)
}

/// How the writing thread writes: direct I/O for aligned pieces until the
/// file refuses it once, the page cache for the others.
#[derive(Default)]
struct Mode {
    /// Whether the file is in direct I/O now.
    direct: bool,
    /// Direct I/O was refused: never again for this file.
    refused: bool,
}

impl Mode {
    fn write(&mut self, file: &File, piece: &Piece) -> io::Result<()> {
        let want = piece.aligned && !self.refused;
        if want != self.direct {
            match set_direct(file, want) {
                Ok(()) => self.direct = want,
                Err(_) if want => self.refused = true,
                Err(e) => return Err(e),
            }
        }
        let bytes = piece.bytes();
        let mut done = 0;
        while done < bytes.len() {
            match (&*file).write(&bytes[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An alignment the device wants larger than ours.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(file, false)?;
                    self.direct = false;
                    self.refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Turns direct I/O on or off for an open file (and its clones, which
/// share the flag).
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take no pointer.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Stores chunks of `sizes` under `base` and checks the file and its
    /// hash; `alone` as when no thread could be started.
    fn store(base: &std::path::Path, sizes: &[usize], alone: bool) -> u64 {
        let dir = base.join(format!(
            "store-test-{}-{}-{alone}",
            std::process::id(),
            sizes.iter().sum::<usize>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut store = Store::new(File::create(&path).unwrap());
        store.alone = alone;
        let mut all = Vec::new();
        let mut x = 1u32;
        for &size in sizes {
            let chunk: Vec<u8> = (0..size)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            store.write(&chunk).unwrap();
            all.extend_from_slice(&chunk);
        }
        let (_, length, digest) = store.finish().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back, all);
        assert_eq!(
            crate::model::identifier::to_hex(digest.as_ref()),
            crate::model::identifier::to_hex(digest::digest(&digest::SHA256, &all).as_ref())
        );
        length
    }

    fn sizes() -> Vec<Vec<usize>> {
        vec![
            vec![],
            vec![1],
            vec![BLOCK - 1],
            vec![BLOCK],
            vec![BLOCK, 1],
            vec![3, BLOCK * 3 + 17, 4096, 5],
            vec![BLOCK / 3; 20],
        ]
    }

    #[test]
    fn small_files_whole_blocks_and_tails_are_stored_and_hashed() {
        for sizes in sizes() {
            let length = store(&std::env::temp_dir(), &sizes, false);
            assert_eq!(length, sizes.iter().sum::<usize>() as u64);
        }
    }

    /// Out of threads, the receiving thread hashes and writes each block
    /// itself: the same file and hash.
    #[test]
    fn without_threads_the_same_files_and_hashes() {
        for sizes in sizes() {
            let length = store(&std::env::temp_dir(), &sizes, true);
            assert_eq!(length, sizes.iter().sum::<usize>() as u64);
        }
    }

    /// tmpfs refuses direct I/O on older kernels, and the writes fall back.
    /// This machine's kernel (6.18) takes it, and then this covers tmpfs
    /// only. The fallback itself (`Mode::refused`) is exercised by
    /// `scripts/test-disk.sh`, on a ramfs mount (mounting needs root).
    #[test]
    fn a_filesystem_without_direct_io_gets_the_same_files() {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        for sizes in sizes() {
            let length = store(shm, &sizes, false);
            assert_eq!(length, sizes.iter().sum::<usize>() as u64);
        }
    }

    /// A tus request appends from wherever the upload stands, unaligned
    /// offsets included, and goes on from the hash carried so far.
    #[test]
    fn appending_from_an_unaligned_offset_gets_the_same_file_and_hash() {
        use sha2::Digest;
        let dir = std::env::temp_dir().join(format!("store-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for before in [0usize, 1, 4095, 4096, 5000, BLOCK + 7] {
            for sizes in sizes() {
                let path = dir.join("f");
                let prefix: Vec<u8> = (0..before).map(|i| (i * 7) as u8).collect();
                std::fs::write(&path, &prefix).unwrap();
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                let mut hash = sha2::Sha256::new();
                hash.update(&prefix);
                // Small blocks, as a tus request's, every other round.
                let mut store = Store::append(file, before as u64, Some(hash));
                if sizes.len() % 2 == 1 {
                    store = store.with_blocks(2 * ALIGN, 2);
                }
                let mut all = prefix.clone();
                for (n, &size) in sizes.iter().enumerate() {
                    let chunk: Vec<u8> = (0..size).map(|i| (i * 13 + n) as u8).collect();
                    store.write(&chunk).unwrap();
                    all.extend_from_slice(&chunk);
                }
                let (_, length, hash) = store.finish_hash().unwrap();
                assert_eq!(length as usize, all.len() - before);
                assert!(std::fs::read(&path).unwrap() == all, "{before} {sizes:?}");
                assert_eq!(
                    hash.unwrap().finalize().to_vec(),
                    sha2::Sha256::digest(&all).to_vec(),
                    "{before} {sizes:?}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a resumable upload publishes is what the file holds: a block
    /// that waited is written through, and counted only then.
    #[test]
    fn written_counts_only_what_reached_the_file() {
        let dir = std::env::temp_dir().join(format!("store-written-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = File::create(&path).unwrap();
        let mut store = Store::append(file, 0, None::<sha2::Sha256>);
        store.write(&[1; 10]).unwrap();
        assert_eq!(store.written(), 0);
        store.flush_stale(Duration::from_secs(3600)).unwrap();
        assert_eq!(store.written(), 0);
        store.flush_stale(Duration::ZERO).unwrap();
        assert_eq!(store.written(), 10);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
        // Whole blocks through the threads, then a stale tail again.
        store.write(&vec![2; 3 * BLOCK + 5]).unwrap();
        store.flush_stale(Duration::ZERO).unwrap();
        let total = 10 + 3 * BLOCK as u64 + 5;
        assert_eq!(store.written(), total);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), total);
        let (_, length, _) = store.finish_hash().unwrap();
        assert_eq!(length, total);
        let back = std::fs::read(&path).unwrap();
        assert!(back[..10].iter().all(|&b| b == 1) && back[10..].iter().all(|&b| b == 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
