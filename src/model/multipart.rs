//! The multipart parser, behind one small synchronous API so that it could
//! be swapped: [`Parser`] turns a blocking body reader into parts and their
//! chunks.
//!
//! It wraps `multer`, which is written for async streams. No executor is
//! needed: the stream that `multer` reads is a one-chunk slot that we fill,
//! and `multer`'s futures are polled by hand. A future that answers
//! `Pending` is asking for bytes; [`Parser`] reads the next block from the
//! body into the slot and polls again. So the parser never holds more than
//! one block of unread input, the body needs not be `Send`, and the same
//! code runs on bytes in memory in the tests and fuzzers.

use std::future::Future;
use std::io::{self, Read};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::Stream;

use crate::model::error::{Error, ErrorKind, Result};

/// Bytes read from the body at a time.
const BLOCK: usize = 256 * 1024;
/// The most bytes a part's headers (with the preamble before the first
/// part) may take before the body is refused as malformed.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// The least a client must send in each idle-timeout window. A socket
/// receive timeout only fires when a read gets nothing at all, so a client
/// trickling one byte a second would otherwise hold a worker for ever.
pub const MIN_PROGRESS: u64 = 1024;

/// The longest boundary RFC 2046 allows; browsers send 30 to 60 characters.
pub const MAX_BOUNDARY: usize = 70;

/// Extracts the boundary from a `multipart/form-data` content type, or
/// fails with 415 (not multipart) or 400 (no boundary, or one longer than
/// RFC 2046's 70 characters: no browser sends one, and refusing it keeps
/// the parser's delimiter search short).
///
/// ```
/// use fileupload::model::multipart::boundary;
/// assert_eq!(boundary("multipart/form-data; boundary=XyZ").unwrap(), "XyZ");
/// assert_eq!(boundary("text/plain").unwrap_err().status(), 415);
/// assert_eq!(boundary("multipart/form-data").unwrap_err().status(), 400);
/// let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
/// assert_eq!(boundary(&long).unwrap_err().status(), 400);
/// ```
pub fn boundary(content_type: &str) -> Result<String> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Error::new(
            ErrorKind::UnsupportedMediaType,
            "an upload must be sent as multipart/form-data",
        ));
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::bad_request("multipart/form-data without a boundary"))?;
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(Error::bad_request(format!(
            "multipart boundary must be 1 to {MAX_BOUNDARY} characters (RFC 2046)"
        )));
    }
    Ok(boundary)
}

/// One part of the form, as its headers describe it.
pub struct Part {
    field: multer::Field<'static>,
    /// The field name (`name=`), control characters removed.
    pub name: String,
    /// The file name as sent (`filename=`), when the part is a file.
    pub filename: Option<String>,
    /// The part's `Content-Type`, when sent.
    pub content_type: Option<String>,
}

#[derive(Default)]
struct Slot {
    block: Option<Bytes>,
    eof: bool,
}

/// The stream `multer` reads: it yields the block in the slot, or asks for
/// one by answering `Pending`.
struct SlotStream(Arc<Mutex<Slot>>);

impl Stream for SlotStream {
    type Item = std::result::Result<Bytes, io::Error>;

    fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut slot = match self.0.lock() {
            Ok(slot) => slot,
            Err(_) => return Poll::Ready(Some(Err(io::Error::other("parser state lost")))),
        };
        match slot.block.take() {
            Some(block) => Poll::Ready(Some(Ok(block))),
            None if slot.eof => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Reads a `multipart/form-data` body part by part.
///
/// ```
/// use fileupload::model::multipart::Parser;
/// let body = b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a;b.txt\"\r\n\
///              Content-Type: text/plain\r\n\r\nhello\r\n--B--\r\n";
/// let mut reader = &body[..];
/// let mut parser = Parser::new(&mut reader, "B", None);
/// let mut part = parser.next_part().unwrap().unwrap();
/// assert_eq!(part.filename.as_deref(), Some("a;b.txt"));
/// assert_eq!(&parser.read_chunk(&mut part).unwrap().unwrap()[..], b"hello");
/// assert!(parser.read_chunk(&mut part).unwrap().is_none());
/// drop(part);
/// assert!(parser.next_part().unwrap().is_none());
/// ```
pub struct Parser<'b> {
    multipart: multer::Multipart<'static>,
    slot: Arc<Mutex<Slot>>,
    body: &'b mut dyn Read,
    buf: Vec<u8>,
    counter: Counter,
}

/// Counts body bytes against the size limit and the minimum-progress rule.
struct Counter {
    received: u64,
    limit: Option<u64>,
    pace: Option<Pace>,
}

/// The minimum-progress rule over windows of the idle timeout: a window
/// that ends with fewer than [`MIN_PROGRESS`] bytes received is idleness.
/// The tus `PATCH` body is read under the same rule.
pub(crate) struct Pace {
    window: Duration,
    start: Instant,
    at_start: u64,
}

impl<'b> Parser<'b> {
    /// A parser of `body` with the given boundary; more than `limit` bytes
    /// of body (when set) fail with 413.
    pub fn new(body: &'b mut dyn Read, boundary: &str, limit: Option<u64>) -> Parser<'b> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        Parser {
            multipart: multer::Multipart::new(SlotStream(slot.clone()), boundary),
            slot,
            body,
            buf: vec![0; BLOCK],
            counter: Counter {
                received: 0,
                limit,
                pace: None,
            },
        }
    }

    /// Applies the minimum-progress rule: once `idle` has passed with fewer
    /// than [`MIN_PROGRESS`] bytes received in it, reading fails with 408.
    /// Every front end gets it, whatever its own per-read timeout.
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Parser<'b> {
        self.counter.pace = Pace::new(idle, self.counter.received);
        self
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        self.counter.received
    }

    /// The next part, or `None` after the closing boundary. The previous
    /// part must have been read to its end and dropped.
    pub fn next_part(&mut self) -> Result<Option<Part>> {
        let Parser {
            multipart,
            slot,
            body,
            buf,
            counter,
        } = self;
        let start = counter.received;
        let field = drive(multipart.next_field(), || {
            if counter.received - start > MAX_HEADER_BYTES + BLOCK as u64 {
                return Err(Error::bad_request(format!(
                    "malformed multipart body: part headers longer than {MAX_HEADER_BYTES} bytes"
                )));
            }
            feed(slot, &mut **body, buf, counter)
        })?
        .map_err(malformed)?;
        Ok(field.map(|field| Part {
            name: field
                .name()
                .map(crate::model::status::strip_controls)
                .unwrap_or_default(),
            filename: field.file_name().map(str::to_owned),
            content_type: field.content_type().map(|m| m.to_string()),
            field,
        }))
    }

    /// Reads what follows the closing boundary (the epilogue, normally a
    /// line end) to the end of the body, so that every byte is counted.
    pub fn finish(&mut self) -> Result<()> {
        loop {
            let n = read_block(&mut *self.body, &mut self.buf)?;
            self.counter.count(n)?;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// The next chunk of a part's content, or `None` at its end.
    pub fn read_chunk(&mut self, part: &mut Part) -> Result<Option<Bytes>> {
        let Parser {
            slot,
            body,
            buf,
            counter,
            ..
        } = self;
        drive(part.field.chunk(), || feed(slot, &mut **body, buf, counter))?.map_err(malformed)
    }
}

/// Polls `future` to completion, calling `more` whenever it waits for input.
fn drive<F: Future>(future: F, mut more: impl FnMut() -> Result<()>) -> Result<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return Ok(output),
            Poll::Pending => more()?,
        }
    }
}

/// Reads the next block of the body into the slot.
fn feed(
    slot: &Mutex<Slot>,
    body: &mut dyn Read,
    buf: &mut [u8],
    counter: &mut Counter,
) -> Result<()> {
    let n = read_block(body, buf)?;
    counter.count(n)?;
    let mut slot = slot
        .lock()
        .map_err(|_| Error::internal("parser state lost"))?;
    if n == 0 {
        slot.eof = true;
    } else {
        slot.block = Some(Bytes::copy_from_slice(&buf[..n]));
    }
    Ok(())
}

fn read_block(body: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match body.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(body_error(&e)),
        }
    }
}

impl Counter {
    fn count(&mut self, n: usize) -> Result<()> {
        self.received += n as u64;
        if let Some(limit) = self.limit
            && self.received > limit
        {
            return Err(Error::too_large(format!(
                "upload larger than the limit of {limit} bytes"
            )));
        }
        match &mut self.pace {
            // The end of the body is never idleness.
            Some(pace) if n > 0 => pace.check(self.received),
            _ => Ok(()),
        }
    }
}

impl Pace {
    /// The rule over windows of `idle` (none for `None` or zero), counting
    /// from `received` bytes.
    pub(crate) fn new(idle: Option<Duration>, received: u64) -> Option<Pace> {
        idle.filter(|d| !d.is_zero()).map(|window| Pace {
            window,
            start: Instant::now(),
            at_start: received,
        })
    }

    /// Fails with 408 when a window has ended with too little received;
    /// `received` counts every body byte so far.
    pub(crate) fn check(&mut self, received: u64) -> Result<()> {
        if self.start.elapsed() < self.window {
            return Ok(());
        }
        if received - self.at_start < MIN_PROGRESS {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "idle timeout: the client sent less than {MIN_PROGRESS} bytes in {:?}",
                    self.window
                ),
            ));
        }
        self.start = Instant::now();
        self.at_start = received;
        Ok(())
    }
}

/// A failed read of the request body: the client went quiet or went away.
pub fn body_error(e: &io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::new(
            ErrorKind::Timeout,
            "idle timeout: the client stopped sending",
        ),
        _ => Error::bad_request(format!("connection lost while reading the body: {e}")),
    }
}

fn malformed(e: multer::Error) -> Error {
    match e {
        multer::Error::IncompleteStream
        | multer::Error::IncompleteFieldData { .. }
        | multer::Error::IncompleteHeaders => {
            Error::bad_request("request body ended before the multipart body was complete")
        }
        other => Error::bad_request(format!("malformed multipart body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, filename, data) in parts {
            b.extend_from_slice(b"--XX\r\nContent-Disposition: form-data; name=\"");
            b.extend_from_slice(name.as_bytes());
            b.push(b'"');
            if let Some(f) = filename {
                b.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XX--\r\n");
        b
    }

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    type Parsed = Vec<(String, Option<String>, Vec<u8>)>;

    fn parse(bytes: &[u8], step: usize) -> Result<Parsed> {
        let mut reader = Trickle(bytes, step);
        let mut parser = Parser::new(&mut reader, "XX", None);
        let mut out = Vec::new();
        while let Some(mut part) = parser.next_part()? {
            let mut data = Vec::new();
            while let Some(chunk) = parser.read_chunk(&mut part)? {
                data.extend_from_slice(&chunk);
            }
            out.push((part.name.clone(), part.filename.clone(), data));
        }
        parser.finish()?;
        assert_eq!(parser.received(), bytes.len() as u64);
        Ok(out)
    }

    #[test]
    fn any_read_size_gives_the_same_parts() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let tricky = b"\r\n--X\r\n--XY\r\r\n-".repeat(1000);
        let b = body(&[
            ("a", None, b"1"),
            ("f", Some("x.bin"), &big),
            ("g", Some("t"), &tricky),
        ]);
        let expect = parse(&b, usize::MAX).unwrap();
        assert_eq!(expect.len(), 3);
        assert_eq!(expect[1].2, big);
        assert_eq!(expect[2].2, tricky);
        for step in [1, 2, 3, 7, 64, 1000, 65536] {
            assert_eq!(parse(&b, step).unwrap(), expect, "read size {step}");
        }
    }

    #[test]
    fn truncated_bodies_fail_with_400() {
        let b = body(&[("f", Some("x"), b"0123456789")]);
        for cut in [0, 5, 20, b.len() - 12, b.len() - 3] {
            let e = parse(&b[..cut], 4).unwrap_err();
            assert_eq!(e.status(), 400, "cut at {cut}: {e}");
        }
    }

    #[test]
    fn limit_counts_bytes_received() {
        let b = body(&[("f", Some("x"), &[7u8; 5000])]);
        let mut reader = Trickle(&b, 1000);
        let mut parser = Parser::new(&mut reader, "XX", Some(4000));
        let mut part = parser.next_part().unwrap().unwrap();
        let e = loop {
            match parser.read_chunk(&mut part) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("limit not enforced"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.status(), 413);
    }

    #[test]
    fn huge_part_headers_are_refused() {
        let mut b = b"--XX\r\nX-Junk: ".to_vec();
        b.extend(std::iter::repeat_n(b'a', 1 << 20));
        b.extend_from_slice(b"\r\n\r\n");
        let e = parse(&b, usize::MAX).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
    }

    /// A reader that hands out `step` bytes per read, pausing before each.
    struct Slow<'a>(&'a [u8], usize, Duration);
    impl Read for Slow<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.2);
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn parse_slowly(bytes: &[u8], step: usize, pause: Duration, idle: Duration) -> Result<usize> {
        let mut reader = Slow(bytes, step, pause);
        let mut parser = Parser::new(&mut reader, "XX", None).with_idle_timeout(Some(idle));
        let mut parts = 0;
        while let Some(mut part) = parser.next_part()? {
            while parser.read_chunk(&mut part)?.is_some() {}
            parts += 1;
        }
        parser.finish()?;
        Ok(parts)
    }

    #[test]
    fn a_trickle_is_idleness() {
        // One byte every 20 ms: under 1 KiB in any 200 ms window, however
        // slow the machine (a slower machine only sends fewer bytes).
        let b = body(&[("f", Some("x"), &[1u8; 4000])]);
        let e =
            parse_slowly(&b, 1, Duration::from_millis(20), Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.status(), 408, "{e}");
        assert!(e.message().contains("idle timeout"), "{e}");
    }

    #[test]
    fn a_steady_client_is_not_idle() {
        // 2 KiB per read: every window that ends has seen at least one read.
        let b = body(&[("f", Some("x"), &[1u8; 40_000])]);
        let parts = parse_slowly(
            &b,
            2048,
            Duration::from_millis(10),
            Duration::from_millis(50),
        )
        .unwrap();
        assert_eq!(parts, 1);
    }

    #[test]
    fn filenames_browsers_send() {
        let raw = b"--XX\r\nContent-Disposition: form-data; filename=\"a;b \\\"q\\\".txt\"; name=\"up\"\r\n\
                    Content-Type: text/plain\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n\r\nz\r\n--XX--\r\n";
        let parts = parse(raw, 5).unwrap();
        assert_eq!(parts[0].0, "up");
        assert_eq!(parts[0].1.as_deref(), Some("a;b \"q\".txt"));
    }
}
