//! Storing one uploaded file: its bytes onto the disk and into its SHA-256,
//! behind [`crate::pool::FileWriter`].
//!
//! A small file is gathered in memory, then hashed and written when it is
//! complete. A large one goes through a pipeline of three threads, each
//! with its own block of [`BLOCK`] bytes at a time: the receiving thread
//! fills blocks, a hashing thread hashes them, and a writing thread writes
//! them with direct I/O (`O_DIRECT`), then hands them back to be filled
//! again. The profile of the simple way (hash, then a buffered write, on
//! the receiving thread) showed SHA-256 at about 40% of the time and the
//! kernel's copy into the page cache and its bookkeeping at about 30%;
//! hashing beside the receiving thread takes the first off its path, and
//! direct I/O the second: the disk reads the block where it is, and the
//! final flush has almost nothing left to write. Memory stays bounded:
//! at most [`BLOCKS`] blocks per file in flight.
//!
//! Where direct I/O is refused (tmpfs, some network filesystems, an
//! alignment the device wants larger than ours), writes go through the
//! page cache as before; where no thread can be started, the receiving
//! thread hashes and writes each block itself. The result on disk is the
//! same either way.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

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

/// A block of [`BLOCK`] bytes starting at an [`ALIGN`]ed address, without
/// `unsafe`: the aligned window of a slightly larger vector.
struct Block {
    mem: Vec<u8>,
    start: usize,
}

impl Block {
    fn new() -> Block {
        // Zeroed memory comes straight from the system: pages untouched
        // by a small file cost nothing.
        let mem = vec![0u8; BLOCK + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Block { mem, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.start..self.start + BLOCK]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + BLOCK]
    }
}

/// The threads of a large file. Dropped before it is finished (the upload
/// failed), it still waits for them: they stop within a few blocks, and no
/// write reaches the file after the upload has been failed.
struct Pipeline {
    to_hash: Option<SyncSender<Block>>,
    free: Receiver<Block>,
    /// Blocks made so far; no more than [`BLOCKS`].
    made: usize,
    hasher: Option<JoinHandle<digest::Context>>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

/// One file being stored; see the module documentation.
pub struct Store {
    file: File,
    block: Option<Block>,
    fill: usize,
    pipeline: Option<Pipeline>,
    /// No thread could be started: blocks are hashed and written here.
    alone: bool,
    /// The hash of what was not hashed by the pipeline.
    context: digest::Context,
    length: u64,
}

impl Store {
    /// Stores into `file`, which is new and empty.
    pub fn new(file: File) -> Store {
        Store {
            file,
            block: None,
            fill: 0,
            pipeline: None,
            alone: false,
            context: digest::Context::new(&digest::SHA256),
            length: 0,
        }
    }

    /// Appends bytes to the file.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let block = match self.block.as_mut() {
                Some(block) => block,
                None => {
                    let block = self.next_block()?;
                    self.block.insert(block)
                }
            };
            let n = bytes.len().min(BLOCK - self.fill);
            block.bytes_mut()[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            self.length += n as u64;
            bytes = &bytes[n..];
            if self.fill == BLOCK {
                self.send_block()?;
            }
        }
        Ok(())
    }

    /// Writes what is left, flushes the file to disk and returns its
    /// length and SHA-256.
    pub fn finish(mut self) -> Result<(File, u64, digest::Digest)> {
        let mut context = match self.pipeline.take() {
            None => self.context.clone(),
            Some(mut pipeline) => pipeline.finish()?,
        };
        if let Some(block) = self.block.take() {
            let tail = &block.bytes()[..self.fill];
            // The tail is not a whole aligned block: it goes through the
            // page cache.
            set_direct(&self.file, false).map_err(|e| write_error(&e))?;
            context.update(tail);
            self.file.write_all(tail).map_err(|e| write_error(&e))?;
        }
        self.file
            .sync_data()
            .map_err(|e| Error::disk("flush the uploaded file", &e))?;
        Ok((self.file, self.length, context.finish()))
    }

    /// A block to fill: one the writing thread is done with, else a new
    /// one while the pipeline has fewer than [`BLOCKS`], else the next one
    /// the writing thread is done with. A file that arrives no faster than
    /// the disk takes it never has more than two.
    fn next_block(&mut self) -> Result<Block> {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(Block::new());
        };
        if let Ok(block) = pipeline.free.try_recv() {
            return Ok(block);
        }
        if pipeline.made < BLOCKS {
            pipeline.made += 1;
            return Ok(Block::new());
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
        self.fill = 0;
        if self.pipeline.is_none() && !self.alone {
            match Pipeline::start(&self.file) {
                Ok(pipeline) => self.pipeline = Some(pipeline),
                // Out of threads: slower, but the upload goes on.
                Err(_) => self.alone = true,
            }
        }
        if self.alone {
            self.context.update(block.bytes());
            self.file
                .write_all(block.bytes())
                .map_err(|e| write_error(&e))?;
            self.block = Some(block);
            return Ok(());
        }
        let sent = self
            .pipeline
            .as_ref()
            .and_then(|p| p.to_hash.as_ref())
            .map(|queue| queue.send(block).is_ok());
        match sent {
            Some(true) => Ok(()),
            _ => Err(self.stopped()),
        }
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

impl Pipeline {
    fn start(file: &File) -> io::Result<Pipeline> {
        let out = file.try_clone()?;
        let (to_hash, hash_queue) = sync_channel::<Block>(1);
        let (to_write, write_queue) = sync_channel::<Block>(1);
        let (give_back, free) = sync_channel::<Block>(BLOCKS);
        let hasher = thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                crate::pool::priority::lower();
                let mut context = digest::Context::new(&digest::SHA256);
                for block in hash_queue {
                    context.update(block.bytes());
                    if to_write.send(block).is_err() {
                        break;
                    }
                }
                context
            })?;
        let writer = thread::Builder::new().name("store".into()).spawn(move || {
            let mut direct = set_direct(&out, true).is_ok();
            for block in write_queue {
                write_block(&out, block.bytes(), &mut direct)?;
                // The receiving thread may have stopped taking blocks.
                let _ = give_back.send(block);
            }
            Ok(())
        })?;
        Ok(Pipeline {
            to_hash: Some(to_hash),
            free,
            made: 1,
            hasher: Some(hasher),
            writer: Some(writer),
        })
    }

    /// Waits for every block sent to be hashed and written.
    fn finish(&mut self) -> Result<digest::Context> {
        // Closing the first queue ends both threads once they are through.
        self.to_hash = None;
        let context = self.hasher.take().map(JoinHandle::join);
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(write_error(&e)),
            _ => return Err(Error::internal("the file writing thread failed")),
        }
        match context {
            Some(Ok(context)) => Ok(context),
            _ => Err(Error::internal("the hashing thread failed")),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.finish();
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

/// Writes a whole block, leaving direct I/O for good at the first write it
/// refuses (EINVAL: an alignment the device wants larger than ours).
fn write_block(mut file: &File, bytes: &[u8], direct: &mut bool) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false)?;
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    fn store(base: &std::path::Path, sizes: &[usize]) -> u64 {
        let dir = base.join(format!(
            "store-test-{}-{}",
            std::process::id(),
            sizes.iter().sum::<usize>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut store = Store::new(File::create(&path).unwrap());
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
            let length = store(&std::env::temp_dir(), &sizes);
            assert_eq!(length, sizes.iter().sum::<usize>() as u64);
        }
    }

    /// tmpfs refuses direct I/O on older kernels: the writes fall back.
    #[test]
    fn a_filesystem_without_direct_io_gets_the_same_files() {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        for sizes in sizes() {
            let length = store(shm, &sizes);
            assert_eq!(length, sizes.iter().sum::<usize>() as u64);
        }
    }
}
