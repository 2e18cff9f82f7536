//! The loopback limit that `scripts/bench` holds the daemon against: an HTTP
//! sink that stores each request body, as sent, to a new file on the same
//! filesystem and flushes it to disk before answering, as the daemon does.
//! It neither parses nor hashes: what it takes is the cost of moving the
//! bytes from the socket to the disk.
//!
//! `sink DIR [direct|hash]`: prints `sink: listening on http://ADDR` on
//! stderr, stores request N's body as `DIR/N`, serves until killed. Plainly
//! it reads 256 KiB at a time (the daemon's reads) and writes each through
//! the page cache; with `direct`, it fills 1 MiB aligned blocks and writes
//! them with `O_DIRECT`, as the daemon stores a large file; with `hash`, it
//! also computes the SHA-256 of the body on a second thread, as the daemon
//! does, and answers with it: the limit for a server that must hash every
//! byte.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::thread;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| io::Error::other("usage: sink DIR"))?,
    );
    let mode = args.next();
    let direct = mode.as_deref() == Some("direct");
    let hash = mode.as_deref() == Some("hash");
    let (block, align) = if direct {
        (1 << 20, 4096)
    } else {
        (256 << 10, 1)
    };
    let mut mem = vec![0u8; block + align];
    let start = mem.as_ptr().align_offset(align);
    let buf = &mut mem[start..start + block];
    let listener = TcpListener::bind("127.0.0.1:0")?;
    eprintln!("sink: listening on http://{}", listener.local_addr()?);
    for (n, stream) in listener.incoming().enumerate() {
        let mut stream = stream?;
        // Headers a byte at a time, so that no body byte is buffered here.
        let mut headers = BufReader::with_capacity(1, stream.try_clone()?);
        let (mut left, mut expect) = (0u64, false);
        loop {
            let mut line = String::new();
            if headers.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((&line, ""));
            if name.eq_ignore_ascii_case("content-length") {
                left = value.trim().parse().unwrap_or(0);
            }
            expect |= name.eq_ignore_ascii_case("expect");
        }
        if expect {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let flags = if direct { libc::O_DIRECT } else { 0 };
        let path = dir.join(n.to_string());
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(&path)?;
        if hash {
            let digest = store_hashed(&mut stream, &mut file, left)?;
            file.sync_data()?;
            let answer = format!("{digest:?}\n");
            write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )?;
            continue;
        }
        let (mut fill, mut stored) = (0, 0u64);
        while left > 0 {
            let got = stream.read(&mut buf[fill..block.min(fill + left as usize)])?;
            if got == 0 {
                break;
            }
            (fill, left) = (fill + got, left - got as u64);
            if fill == block || left == 0 || !direct {
                // Direct I/O writes whole aligned blocks: the tail is padded,
                // then cut back.
                let whole = if direct {
                    fill.next_multiple_of(align)
                } else {
                    fill
                };
                file.write_all(&buf[..whole])?;
                (stored, fill) = (stored + fill as u64, 0);
            }
        }
        file.set_len(stored)?;
        file.sync_data()?;
        stream
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    }
    Ok(())
}

/// Copies `left` bytes from `stream` to `file` through the page cache,
/// 256 KiB at a time, while a second thread hashes each piece in turn.
fn store_hashed(
    stream: &mut impl Read,
    file: &mut impl Write,
    mut left: u64,
) -> io::Result<ring::digest::Digest> {
    const PIECE: usize = 256 << 10;
    let (to_hash, hashing) = sync_channel::<(Vec<u8>, usize)>(4);
    let (done, free) = sync_channel::<Vec<u8>>(8);
    for _ in 0..4 {
        let _ = done.send(vec![0; PIECE]);
    }
    let hasher = thread::spawn(move || {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for (piece, n) in hashing {
            context.update(&piece[..n]);
            let _ = done.send(piece);
        }
        context.finish()
    });
    while left > 0 {
        let mut piece = free.recv().map_err(io::Error::other)?;
        let got = stream.read(&mut piece[..PIECE.min(left as usize)])?;
        if got == 0 {
            break;
        }
        left -= got as u64;
        file.write_all(&piece[..got])?;
        to_hash.send((piece, got)).map_err(io::Error::other)?;
    }
    drop(to_hash);
    hasher
        .join()
        .map_err(|_| io::Error::other("the hashing thread failed"))
}
