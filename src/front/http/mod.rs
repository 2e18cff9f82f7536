//! The HTTP daemon: HTTP/1.1 connections ([`codec`] parses, this module
//! moves the bytes) served by the shared [`super::driver`], each
//! request translated to the core's and its answer back.
//!
//! A connection is kept between requests (HTTP/1.1 persistence, requests
//! answered in order) unless the client asks otherwise, its framing failed,
//! an upload on it ended in an error, or part of a body was left unread;
//! then the answer says `Connection: close` and the connection ends.

pub mod codec;
mod park;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::Socket;

use self::codec::{CONTINUE, Dechunker, Framing, Head, HeadScan, HttpError, encode_head};
use self::park::Lot;
use super::driver::{self, Driver, Front, Tracker, Workers};
use super::listen::{Listener, ReadWaker, Shut};
use crate::app::{Outcome, Route, render::render, route_request};
use crate::handoff::Service;
use crate::log;
use crate::model::error::{Error, ErrorKind};
use crate::model::http::{Request, Response, without_content};

/// Bytes read from a connection at a time while reading heads.
const READ_SIZE: usize = 64 * 1024;
/// The most bytes of an unread body read off to keep a connection.
const MAX_DRAIN: u64 = 64 * 1024;
/// How long a closing connection reads off what the client still sends,
/// so that the answer is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Serves HTTP on `listen` until SIGINT or SIGTERM.
pub fn serve(service: Service, listen: &str, workers: &Workers) -> Result<(), String> {
    let listener = Listener::bind(listen)?;
    let shown = if listener.name().starts_with("unix:") {
        listener.name().to_owned()
    } else {
        format!("http://{}", listener.name())
    };
    crate::log::say!("listening on {shown}");
    driver::run(
        listener,
        service,
        workers,
        Http {
            lot: Arc::new(Lot::default()),
        },
    )
}

/// The HTTP protocol, for the driver.
struct Http {
    /// Where status clients' connections wait between requests.
    lot: Arc<Lot>,
}

impl Front for Http {
    fn serve(&self, driver: &Arc<Driver>, socket: Socket, tracker: Tracker) {
        serve_conn(
            driver,
            &self.lot,
            Conn::new(socket, driver.idle_timeout),
            tracker,
        );
    }

    fn start(&self, driver: &Arc<Driver>) {
        self.lot.start(driver);
    }

    fn stop(&self) {
        self.lot.stop();
    }

    fn refusal(&self) -> Vec<u8> {
        let response = render(Outcome::refused(Error::new(
            ErrorKind::Unavailable,
            "too many connections; try again",
        )));
        encode_whole(&response, false, true)
    }
}

/// Serves requests on `conn` until it ends, on this thread; a connection
/// that has just been answered a status request and has nothing more
/// buffered is parked instead, and the thread ends.
fn serve_conn(driver: &Arc<Driver>, lot: &Arc<Lot>, mut conn: Conn, mut tracker: Tracker) {
    loop {
        tracker.waiting();
        let head = match conn.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return conn.refuse(&e),
        };
        tracker.busy();
        let route = route_request(&head.method, &head.path, &head.query, &head.headers);
        let next = if route.is_upload() {
            let service = driver.service.clone();
            match driver
                .uploads
                .run(conn, move |c| c.exchange(&service, head, route))
            {
                Some((back, next)) => {
                    conn = back;
                    next
                }
                None => return,
            }
        } else {
            conn.exchange(&driver.service, head, route)
        };
        match next {
            Next::Keep => {}
            Next::Close => return,
            // On this thread, not the upload worker's: a worker is
            // not held while a client finishes sending.
            Next::Linger => return conn.linger(),
        }
        if route == Route::Status && conn.buffered().is_empty() {
            match lot.park(conn, tracker) {
                Ok(()) => return,
                Err((back, kept)) => (conn, tracker) = (back, kept),
            }
        }
    }
}

/// One connection: the socket and what was read of it but not used yet.
struct Conn {
    stream: Socket,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    idle_timeout: Duration,
}

impl Conn {
    /// A connection over `stream`, whose reads fail after `idle_timeout`
    /// of silence.
    fn new(stream: Socket, idle_timeout: Duration) -> Conn {
        Conn {
            stream,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            idle_timeout,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more into the buffer, making room first; the count read, 0 at
    /// the end of input.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // A head larger than the buffer: grow up to the head's bound.
            let grown = (self.buf.len() * 2).min(codec::MAX_HEAD + READ_SIZE);
            if grown == self.buf.len() {
                return Err(io::Error::other("read buffer full"));
            }
            self.buf.resize(grown, 0);
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next request head: `None` when the client closed or stayed
    /// silent between requests. A head must arrive whole within the idle
    /// timeout of its first byte: a client trickling one byte at a time
    /// gets 408.
    fn read_head(&mut self) -> Result<Option<Head>, HttpError> {
        let mut first_byte = (!self.buffered().is_empty()).then(Instant::now);
        let mut scan = HeadScan::default();
        loop {
            if let Some((head, used)) = scan.scan(self.buffered())? {
                self.start += used;
                return Ok(Some(head));
            }
            if first_byte.is_some_and(|t| t.elapsed() >= self.idle_timeout) {
                return Err(HttpError::Timeout);
            }
            match self.fill() {
                Ok(0) if self.buffered().is_empty() => return Ok(None),
                Ok(0) => return Err(HttpError::BadRequest("connection closed inside a head")),
                Ok(_) => {
                    first_byte.get_or_insert_with(Instant::now);
                }
                Err(e) if is_timeout(&e) && !self.buffered().is_empty() => {
                    return Err(HttpError::Timeout);
                }
                // Silent between requests, reset, or evicted: just close.
                Err(_) => return Ok(None),
            }
        }
    }

    /// Answers a request that cannot be read, and closes.
    fn refuse(&mut self, e: &HttpError) {
        let started = Instant::now();
        let outcome = Outcome::refused(Error::new(e.kind(), e.to_string()));
        log::request("-", "-", &outcome, started.elapsed());
        let response = render(outcome);
        let _ = self.respond(&response, false, true);
        self.linger();
    }

    /// Answers one request; what becomes of the connection.
    fn exchange(&mut self, service: &Service, head: Head, route: Route) -> Next {
        let (response, head_only, next, line) = self.answer(service, head, route);
        log::write_line(line);
        if self
            .respond(&response, head_only, next != Next::Keep)
            .is_err()
        {
            return Next::Close;
        }
        next
    }

    /// The answer to one request, not sent yet: the response, whether the
    /// request was `HEAD`, what becomes of the connection once sent, and
    /// the request's log line, for the caller to write.
    fn answer(
        &mut self,
        service: &Service,
        head: Head,
        route: Route,
    ) -> (Response, bool, Next, String) {
        let started = Instant::now();
        let Head {
            method,
            path,
            query,
            headers,
            framing,
            keep_alive,
            expect_continue,
            ..
        } = head;
        let waker = ReadWaker::new(route, &self.stream);
        let wake = || waker.wake();
        let head_only = method == "HEAD";
        let mut body = Body {
            conn: self,
            framing,
            left: match framing {
                Framing::Length(n) => n,
                Framing::Chunked => 0,
            },
            dechunker: Dechunker::default(),
            continue_pending: expect_continue,
            state: BodyState::Open,
            framing_error: None,
        };
        if matches!(framing, Framing::Length(0)) {
            body.state = BodyState::Done;
            body.continue_pending = false;
        }
        let mut outcome = service.handle(
            route,
            Request {
                method: method.clone(),
                path: path.clone(),
                query,
                headers,
                content_length: match framing {
                    Framing::Length(n) => Some(n),
                    Framing::Chunked => None,
                },
                body: &mut body,
                interrupt: waker.can_wake().then_some(&wake as &(dyn Fn() + Sync)),
            },
        );
        // An upload that failed leaves the body's framing in doubt: close.
        let mut close = !keep_alive
            || (route == Route::Upload && outcome.answer.is_err())
            || body.state == BodyState::Broken;
        if body.continue_pending {
            // The client waits for `100 Continue` before it sends a body
            // the core never asked for: it gets the final answer instead,
            // and the connection ends (RFC 9110 section 10.1.1).
            close = true;
        } else if !close && body.state == BodyState::Open {
            // What the core did not read, a status request's stray body
            // say, is read off when small; else the connection ends.
            close = !body.drain(MAX_DRAIN);
        }
        if let Some(why) = body.framing_error.take()
            && outcome.answer.is_ok()
        {
            // The answer was ready, but the request it answers was not
            // framed right: that is what the client must hear.
            outcome.answer = Err(Error::bad_request(why));
        }
        let unread = body.state != BodyState::Done;
        let line = log::request_line(&method, &path, &outcome, started.elapsed());
        let next = match (close, unread) {
            (false, _) => Next::Keep,
            (true, false) => Next::Close,
            (true, true) => Next::Linger,
        };
        (render(outcome), head_only, next, line)
    }

    fn respond(&mut self, response: &Response, head_only: bool, close: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(256 + response.body.len().min(READ_SIZE));
        let rest = encode_answer(response, head_only, close, &mut out);
        self.stream.write_all(&out)?;
        if !rest.is_empty() {
            self.stream.write_all(rest)?;
        }
        self.stream.flush()
    }

    /// Before closing: stop sending, and read off for a moment what the
    /// client still sends, so that the answer is not lost to a reset.
    fn linger(&mut self) {
        self.stream.shut_write();
        let until = Instant::now() + LINGER;
        let mut scratch = [0u8; 16 * 1024];
        loop {
            // Each read waits only for what is left of the linger, not for
            // the idle timeout the socket was given.
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.stream.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// An answer, head and body, in one buffer: for a write that must not
/// wait (the refusal at the cap, a parked connection's answer).
fn encode_whole(response: &Response, head_only: bool, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + response.body.len());
    let rest = encode_answer(response, head_only, close, &mut out);
    out.extend_from_slice(rest);
    out
}

/// Appends an answer's head to `out`, and its body when it is small
/// enough to go out in the same write (one segment for a status answer);
/// returns what of the body is left to write after it.
fn encode_answer<'r>(
    response: &'r Response,
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> &'r [u8] {
    let body: &[u8] = if head_only || without_content(response.status) {
        &[]
    } else {
        &response.body
    };
    let date = log::http_date_now();
    encode_head(
        response.status,
        &response.headers,
        response.body.len() as u64,
        close,
        &date,
        out,
    );
    if body.len() <= READ_SIZE {
        out.extend_from_slice(body);
        &[]
    } else {
        body
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What becomes of a connection after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// It serves the next request.
    Keep,
    /// It ends now.
    Close,
    /// It ends once what the client still sends of an unread body is
    /// read off for a moment, so that the answer is not lost to a reset.
    Linger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Open,
    Done,
    /// Its framing failed or the client went: the connection cannot go on.
    Broken,
}

/// A request body as the core reads it, framed as its head said.
struct Body<'c> {
    conn: &'c mut Conn,
    framing: Framing,
    /// Bytes left of a `Content-Length` body.
    left: u64,
    dechunker: Dechunker,
    /// `100 Continue` is owed before the first read: sent only when the
    /// core reads the body, so a refused upload is never sent.
    continue_pending: bool,
    state: BodyState,
    /// Why the chunked framing failed, if it did.
    framing_error: Option<String>,
}

impl Body<'_> {
    fn broken(&mut self, kind: io::ErrorKind, why: String) -> io::Error {
        self.state = BodyState::Broken;
        io::Error::new(kind, why)
    }

    /// Reads off the rest of the body, at most `limit` bytes; whether it
    /// ended.
    fn drain(&mut self, limit: u64) -> bool {
        if matches!(self.framing, Framing::Length(_)) && self.left > limit {
            return false;
        }
        // Nothing is owed to a client that was never asked for its body.
        self.continue_pending = false;
        let mut scratch = [0u8; 8 * 1024];
        let mut read = 0u64;
        while self.state == BodyState::Open && read <= limit {
            match self.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => read += n as u64,
                Err(_) => return false,
            }
        }
        self.state == BodyState::Done
    }

    fn read_length(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let buffered = self.conn.buffered().len();
        let n = if buffered > 0 {
            let n = want.min(buffered);
            out[..n].copy_from_slice(&self.conn.buffered()[..n]);
            self.conn.start += n;
            n
        } else {
            // Straight into the core's buffer: no copy for the bulk.
            let read = loop {
                match self.conn.stream.read(&mut out[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            match read {
                Ok(0) => {
                    return Err(self.broken(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the client closed with {} bytes of the body unsent",
                            self.left
                        ),
                    ));
                }
                Ok(n) => n,
                Err(e) => return Err(self.failed(e)),
            }
        };
        self.left -= n as u64;
        if self.left == 0 {
            self.state = BodyState::Done;
        }
        Ok(n)
    }

    fn read_chunked(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.conn.buffered().is_empty() {
                match self.conn.fill() {
                    Ok(0) => {
                        return Err(self.broken(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed inside a chunked body".into(),
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(self.failed(e)),
                }
            }
            let (used, written) = match self.dechunker.decode(self.conn.buffered(), out) {
                Ok(done) => done,
                Err(e) => {
                    self.framing_error = Some(e.to_string());
                    return Err(self.broken(io::ErrorKind::InvalidData, e.to_string()));
                }
            };
            self.conn.start += used;
            if self.dechunker.is_done() {
                self.state = BodyState::Done;
            }
            if written > 0 || self.state == BodyState::Done {
                return Ok(written);
            }
        }
    }

    fn failed(&mut self, e: io::Error) -> io::Error {
        // A timeout keeps its kind: the core answers it 408.
        let kind = if is_timeout(&e) {
            io::ErrorKind::TimedOut
        } else {
            e.kind()
        };
        self.broken(kind, e.to_string())
    }
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.state != BodyState::Open || out.is_empty() {
            return Ok(0);
        }
        if self.continue_pending {
            self.continue_pending = false;
            if let Err(e) = self.conn.stream.write_all(CONTINUE) {
                return Err(self.failed(e));
            }
        }
        match self.framing {
            Framing::Length(_) => self.read_length(out),
            Framing::Chunked => self.read_chunked(out),
        }
    }
}
