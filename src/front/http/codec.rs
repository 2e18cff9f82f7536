//! HTTP/1.1 requests, sans-IO (RFC 9112): bytes in, a typed [`Head`] and
//! body bytes out, and the bytes of an answer back. The socket is the
//! connection's business (`Conn` in the module above); nothing here reads or writes
//! one, allocates by what a client declares, or can panic on any input.
//!
//! Heads are parsed by `httparse`; the framing (which of `Content-Length`
//! and `Transfer-Encoding` decides where a body ends) and the chunked
//! decoder are ours, because that is where request smuggling lives and the
//! rules must be exactly RFC 9112 section 6.3: anything ambiguous is a 400
//! and the connection is closed, never guessed at.

use std::fmt;

use crate::model::error::ErrorKind;
use crate::model::http::{HeaderName, HeaderValue, hex_value};

/// The most bytes a request head (request line and fields) may take.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a request may have.
const MAX_FIELDS: usize = 100;
/// The most bytes of chunk extensions one chunk may carry.
pub const MAX_CHUNK_EXTENSION: usize = 4096;
/// The most bytes of trailer fields a chunked body may end with.
pub const MAX_TRAILER: usize = 8192;
/// A chunk size has at most this many hex digits (`u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a request cannot be read: each answers with its status, and the
/// connection is closed after it (its framing can no longer be trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed, or framed ambiguously.
    BadRequest(&'static str),
    /// 408: the head did not arrive in time.
    Timeout,
    /// 431: the head is larger than [`MAX_HEAD`] or has too many fields.
    HeadTooLarge,
    /// 501: a transfer coding other than `chunked`.
    NotImplemented,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl HttpError {
    /// The kind of failure, which says the status to answer with.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HttpError::BadRequest(_) => ErrorKind::BadRequest,
            HttpError::Timeout => ErrorKind::Timeout,
            HttpError::HeadTooLarge => ErrorKind::HeadTooLarge,
            HttpError::NotImplemented => ErrorKind::NotImplemented,
            HttpError::VersionNotSupported => ErrorKind::VersionNotSupported,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::Timeout => f.write_str("the request head did not arrive in time"),
            HttpError::HeadTooLarge => write!(
                f,
                "request head larger than {MAX_HEAD} bytes or with more than {MAX_FIELDS} fields"
            ),
            HttpError::NotImplemented => {
                f.write_str("transfer codings other than chunked are not supported")
            }
            HttpError::VersionNotSupported => f.write_str("only HTTP/1.0 and HTTP/1.1 are served"),
        }
    }
}

/// Where a request body ends (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`, or no body at all (0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path of the target, without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The fields, names as sent.
    pub headers: Vec<(String, String)>,
    /// Where the body ends.
    pub framing: Framing,
    /// Whether the client asks to keep the connection after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Parses a request head from the start of `input`: `Ok(None)` while it is
/// incomplete, else the head and how many bytes it took. Empty lines
/// before the request line are skipped, as RFC 9112 section 2.2 allows.
pub fn parse_head(input: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let used = match request.parse(input) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => {
            return if input.len() >= MAX_HEAD {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(input)),
        Err(e) => return Err(HttpError::BadRequest(parse_error(e))),
    };
    if used > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let method = request.method.unwrap_or_default().to_owned();
    let minor = request.version.unwrap_or(1);
    let (path, query) = split_target(request.path.unwrap_or_default())?;
    let mut headers = Vec::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        headers.push((field.name.to_owned(), field_value(field.value)?));
    }
    let framing = framing(minor, &headers)?;
    if minor == 1 && count(&headers, "host") != 1 {
        // RFC 9112 section 3.2: exactly one Host in HTTP/1.1.
        return Err(HttpError::BadRequest(
            "HTTP/1.1 needs exactly one Host field",
        ));
    }
    let connection = |token: &str| {
        values(&headers, "connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if minor == 1 {
        !connection("close")
    } else {
        connection("keep-alive") && !connection("close")
    };
    let expect_continue = minor == 1
        && values(&headers, "expect").any(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    Ok(Some((
        Head {
            method,
            path,
            query,
            minor,
            headers,
            framing,
            keep_alive,
            expect_continue,
        },
        used,
    )))
}

/// Finds the request head in what a connection has received so far,
/// parsing it only once its blank line is there: a head trickled in one
/// byte at a time costs one parse, not one per byte, and any cut of the
/// same bytes gives the same result.
#[derive(Debug, Clone, Default)]
pub struct HeadScan {
    /// How much of the data was looked at already.
    scanned: usize,
}

impl HeadScan {
    /// `data` is everything received since the head began; it only grows
    /// between calls. `Ok(None)`: not complete yet.
    pub fn scan(&mut self, data: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
        // Empty lines before the request line are skipped (RFC 9112
        // section 2.2): they must not be taken for the blank line that
        // ends the head.
        let lead = data
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(data.len());
        let from = self.scanned.saturating_sub(3).clamp(lead, data.len());
        self.scanned = data.len();
        if ends_head(&data[from..]) {
            return parse_head(data);
        }
        if data.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(None)
    }
}

/// Whether `data` holds the blank line that ends a head (CRLF CRLF, or the
/// bare LF forms RFC 9112 section 2.2 lets a recipient accept).
fn ends_head(data: &[u8]) -> bool {
    data.windows(2).any(|w| w == b"\n\n") || data.windows(3).any(|w| w == b"\n\r\n")
}

/// httparse says `Version` for any request line whose third word is not
/// `HTTP/1.x`: 505 is for another HTTP version, anything else is garbage.
fn version_error(input: &[u8]) -> HttpError {
    let line = input
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r");
    let version = line.and_then(|l| l.split(|&b| b == b' ').nth(2));
    match version {
        Some(v) if v.starts_with(b"HTTP/") && v.len() >= 8 && v[5].is_ascii_digit() => {
            HttpError::VersionNotSupported
        }
        _ => HttpError::BadRequest("malformed request line"),
    }
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid field name (or an obsolete line folding)",
        httparse::Error::HeaderValue => "invalid byte in a field value",
        httparse::Error::NewLine | httparse::Error::Status => "malformed line ending",
        httparse::Error::Token => "invalid method or request line",
        _ => "malformed request head",
    }
}

/// The origin form `/path?query`, or the absolute form a client talking to
/// a proxy sends (`http://host/path?query`, RFC 9112 section 3.2.2).
fn split_target(target: &str) -> Result<(String, String), HttpError> {
    let target = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            match rest.find(['/', '?']) {
                Some(at) if rest[at..].starts_with('/') => &rest[at..],
                Some(at) => return Ok(("/".into(), rest[at + 1..].into())),
                None => "/",
            }
        }
        _ => target,
    };
    // `*` (OPTIONS) is routed like any path the core does not know.
    if !target.starts_with('/') && target != "*" {
        return Err(HttpError::BadRequest("the request target is not a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok((path.to_owned(), query.to_owned()))
}

/// A field value as text. httparse has refused CR, LF and NUL in it
/// already; bytes above 0x7F (obs-text) are kept as Latin-1 would give
/// them, so nothing a client sent is turned into something else silently.
fn field_value(value: &[u8]) -> Result<String, HttpError> {
    if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(HttpError::BadRequest("control character in a field value"));
    }
    Ok(match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => value.iter().map(|&b| char::from(b)).collect(),
    })
}

fn values<'h>(headers: &'h [(String, String)], name: &'h str) -> impl Iterator<Item = &'h str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn count(headers: &[(String, String)], name: &str) -> usize {
    values(headers, name).count()
}

/// RFC 9112 section 6.3, strictly: `Transfer-Encoding` must end in
/// `chunked` (else 400), knows no other coding (501), is refused in
/// HTTP/1.0 and beside `Content-Length`; every `Content-Length` value,
/// listed or repeated, must be the same run of digits.
fn framing(minor: u8, headers: &[(String, String)]) -> Result<Framing, HttpError> {
    let codings: Vec<&str> = values(headers, "transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let lengths: Vec<&str> = values(headers, "content-length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !codings.is_empty() {
        if minor == 0 {
            return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if !lengths.is_empty() {
            return Err(HttpError::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last = codings.last().copied().unwrap_or_default();
        if !last.eq_ignore_ascii_case("chunked") {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding does not end in chunked",
            ));
        }
        if codings.len() > 1 {
            return Err(
                if codings[..codings.len() - 1]
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("chunked"))
                {
                    HttpError::BadRequest("chunked applied twice")
                } else {
                    HttpError::NotImplemented
                },
            );
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for text in lengths {
        let value = parse_length(text)?;
        if length.is_some_and(|l| l != value) {
            return Err(HttpError::BadRequest("differing Content-Length values"));
        }
        length = Some(value);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// `1*DIGIT` that fits in a `u64`: no sign, no space, no hex.
fn parse_length(text: &str) -> Result<u64, HttpError> {
    let invalid = HttpError::BadRequest("invalid Content-Length");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid);
    }
    text.parse::<u64>().map_err(|_| invalid)
}

/// The chunked decoder (RFC 9112 section 7.1): fed any cut of the body's
/// bytes, it gives the same data. Chunk extensions and trailer fields are
/// read and dropped within their bounds; line ends must be CRLF.
#[derive(Debug, Clone, Default)]
pub struct Dechunker {
    state: Chunk,
    /// Digits of the size read so far, and their value.
    digits: u8,
    size: u64,
    /// Extension bytes of the current chunk, or trailer bytes.
    spent: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Chunk {
    /// Reading the size's hex digits.
    #[default]
    Size,
    /// Past the size: an extension, up to CR.
    Extension(u64),
    /// The LF after the size line's CR.
    SizeLf(u64),
    /// Data bytes left in the chunk.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after it.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

impl Dechunker {
    /// Decodes from `input` into `out`: how many input bytes were used and
    /// how many data bytes were written. It stops when `out` is full or the
    /// body ends; it uses every input byte otherwise. Data decoded before
    /// a framing error is given first, and the error on the next call, so
    /// that any cut of the input gives the same bytes before the error.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), HttpError> {
        let (mut used, mut written) = (0, 0);
        match self.run(input, out, &mut used, &mut written) {
            // Every error is met again at the same byte: it leaves the
            // state as it was, or past its bound for good.
            Err(_) if written > 0 => Ok((used, written)),
            Err(e) => Err(e),
            Ok(()) => Ok((used, written)),
        }
    }

    fn run(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        used: &mut usize,
        written: &mut usize,
    ) -> Result<(), HttpError> {
        let bad = HttpError::BadRequest;
        while *used < input.len() && self.state != Chunk::Done {
            let byte = input[*used];
            match self.state {
                Chunk::Data(left) => {
                    let room = out.len() - *written;
                    if room == 0 {
                        break;
                    }
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(room)
                        .min(input.len() - *used);
                    out[*written..*written + n].copy_from_slice(&input[*used..*used + n]);
                    *used += n;
                    *written += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left)
                    };
                    continue;
                }
                Chunk::Size => match (hex_value(byte), byte) {
                    (Some(digit), _) => {
                        // 16 hex digits fill a u64: no overflow below that.
                        if self.digits >= MAX_SIZE_DIGITS {
                            return Err(bad("chunk size too large"));
                        }
                        self.digits += 1;
                        self.size = self.size << 4 | u64::from(digit);
                    }
                    _ if self.digits == 0 => return Err(bad("chunk size missing")),
                    (None, b';' | b' ' | b'\t' | b'\r') => {
                        self.state = Chunk::Extension(self.size);
                        self.spent = 0;
                        continue;
                    }
                    _ => return Err(bad("invalid chunk size")),
                },
                Chunk::Extension(size) => match byte {
                    b'\r' => self.state = Chunk::SizeLf(size),
                    b'\n' => return Err(bad("bare LF in chunked framing")),
                    _ => {
                        self.spent += 1;
                        if self.spent > MAX_CHUNK_EXTENSION {
                            return Err(bad("chunk extension too long"));
                        }
                        if byte < 0x20 && byte != b'\t' || byte == 0x7f {
                            return Err(bad("control character in a chunk extension"));
                        }
                    }
                },
                Chunk::SizeLf(size) => {
                    if byte != b'\n' {
                        return Err(bad("chunk size line not ended by CRLF"));
                    }
                    self.digits = 0;
                    self.size = 0;
                    self.spent = 0;
                    self.state = if size == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::DataCr => {
                    if byte != b'\r' {
                        return Err(bad("chunk data longer than its size"));
                    }
                    self.state = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    if byte != b'\n' {
                        return Err(bad("chunk data not ended by CRLF"));
                    }
                    self.state = Chunk::Size;
                }
                Chunk::TrailerStart => {
                    self.state = match byte {
                        b'\r' => Chunk::EndLf,
                        b'\n' => return Err(bad("bare LF in chunked framing")),
                        _ => {
                            self.count_trailer()?;
                            Chunk::Trailer
                        }
                    }
                }
                Chunk::Trailer => match byte {
                    b'\r' => self.state = Chunk::TrailerLf,
                    b'\n' | 0 => return Err(bad("malformed trailer field")),
                    _ => self.count_trailer()?,
                },
                Chunk::TrailerLf | Chunk::EndLf => {
                    if byte != b'\n' {
                        return Err(bad("trailer line not ended by CRLF"));
                    }
                    self.state = if self.state == Chunk::EndLf {
                        Chunk::Done
                    } else {
                        Chunk::TrailerStart
                    };
                }
                Chunk::Done => break,
            }
            *used += 1;
        }
        Ok(())
    }

    /// Whether the whole body, trailer and all, has been read.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    fn count_trailer(&mut self) -> Result<(), HttpError> {
        self.spent += 1;
        if self.spent > MAX_TRAILER {
            return Err(HttpError::BadRequest("trailer fields too long"));
        }
        Ok(())
    }
}

/// The interim answer to `Expect: 100-continue`, sent before the first
/// read of a body the core asked for.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Fields the connection states itself: an application's are dropped.
const OURS: &[&str] = &["content-length", "transfer-encoding", "connection", "date"];

/// Writes an answer's status line and fields: the given ones but those of
/// the connection, then `Date`, `Content-Length` and, when the connection
/// ends after it, `Connection: close`. The fields are typed: a name is a
/// token and a value has no CR, LF or NUL, so nothing written here can
/// change the framing of what follows.
pub fn encode_head(
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    content_length: u64,
    close: bool,
    date: &str,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\n",
        crate::model::http::reason(status)
    );
    for (name, value) in headers {
        if OURS.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            continue;
        }
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Date: {date}\r\n");
    if !crate::model::http::without_content(status) {
        let _ = write!(out, "Content-Length: {content_length}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes into buffers of `room`
    /// bytes: the data, and whether it ended (`Some(true)`), failed
    /// (`None`) or wants more (`Some(false)`).
    fn dechunk(input: &[u8], step: usize, room: usize) -> (Vec<u8>, Option<bool>) {
        let mut d = Dechunker::default();
        let mut data = Vec::new();
        let mut out = vec![0; room];
        for piece in input.chunks(step) {
            let mut at = 0;
            while at < piece.len() && !d.is_done() {
                match d.decode(&piece[at..], &mut out) {
                    Ok((used, written)) => {
                        at += used;
                        data.extend_from_slice(&out[..written]);
                    }
                    Err(_) => return (data, None),
                }
            }
        }
        let done = d.is_done();
        (data, Some(done))
    }

    #[test]
    fn any_cut_of_a_chunked_body_gives_the_same_data() {
        let body = b"5;a=b\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..body.len() {
            for room in [1, 3, 64] {
                assert_eq!(
                    dechunk(body, step, room),
                    (b"hello0123456789abcdef".to_vec(), Some(true)),
                    "step {step} room {room}"
                );
            }
        }
        // A bare LF, data past its size, no size, no hex, 17 digits, NUL.
        const BROKEN: [&[u8]; 6] = [
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"\r\n",
            b"g\r\n",
            b"11111111111111111\r\n",
            b"0\r\nX\0: t\r\n\r\n",
        ];
        for bad in BROKEN {
            for step in 1..=bad.len() {
                assert_eq!(dechunk(bad, step, 8).1, None, "{bad:?} step {step}");
            }
        }
        // Found by the fuzzer: data before a framing error came out with a
        // small buffer and was lost with a large one.
        let early = b"5\r\nXa:\r\xa0\n\rLength: 5, 5\r\nX: a\r\n\r\n";
        let whole = dechunk(early, early.len(), 1 << 16);
        assert_eq!(whole, (b"Xa:\r\xa0".to_vec(), None));
        for step in 1..early.len() {
            for room in [1, 3, 64] {
                assert_eq!(dechunk(early, step, room), whole, "step {step} room {room}");
            }
        }
        // The largest size that fits is a size, not an error.
        assert_eq!(
            dechunk(b"ffffffffffffffff\r\nab", 1, 8),
            (b"ab".to_vec(), Some(false))
        );
    }

    #[test]
    fn chunk_extensions_and_trailers_are_bounded() {
        // The bound counts every byte between the size and its CRLF.
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION - 1));
        long.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        assert_eq!(dechunk(&long, 1000, 8), (b"a".to_vec(), Some(true)));
        long.insert(3, b'x');
        assert_eq!(dechunk(&long, 1000, 8).1, None);
        let mut trailer = b"0\r\nX: ".to_vec();
        trailer.extend(std::iter::repeat_n(b't', MAX_TRAILER));
        trailer.extend_from_slice(b"\r\n\r\n");
        assert_eq!(dechunk(&trailer, 1000, 8).1, None);
    }

    #[test]
    fn any_cut_of_a_head_gives_the_same_head() {
        let head = b"\r\nPOST /upload?X-Progress-ID=a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let whole = HeadScan::default().scan(head).unwrap().unwrap();
        assert_eq!(whole.1, head.len() - 5);
        assert_eq!(whole.0.path, "/upload");
        assert_eq!(whole.0.query, "X-Progress-ID=a");
        assert_eq!(whole.0.framing, Framing::Length(5));
        // Found by the fuzzer: the empty lines before a request line were
        // once taken for the end of a head, so that the same bytes were
        // refused whole and waited for when cut after those lines.
        for early in [
            &b"\r\n\nConnecti:\ne@:o\n"[..],
            b"\r\n\nConnecti:\ne@:o\n\n",
        ] {
            let whole = HeadScan::default().scan(early);
            for step in 1..early.len() {
                let mut scan = HeadScan::default();
                let found = (step..=early.len())
                    .step_by(step)
                    .chain([early.len()])
                    .map(|end| scan.scan(&early[..end]))
                    .find(|r| !matches!(r, Ok(None)))
                    .unwrap_or(Ok(None));
                assert_eq!(found, whole, "{early:?} step {step}");
            }
        }
        for step in 1..head.len() {
            let mut scan = HeadScan::default();
            let mut found = None;
            for end in (step..=head.len()).step_by(step).chain([head.len()]) {
                if let Some(h) = scan.scan(&head[..end]).unwrap() {
                    found = Some(h);
                    break;
                }
            }
            assert_eq!(found.as_ref(), Some(&whole), "step {step}");
        }
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let framing = |fields: &str, version: &str| {
            parse_head(format!("POST / HTTP/{version}\r\nHost: h\r\n{fields}\r\n").as_bytes())
                .map(|h| h.map(|(h, _)| h.framing))
        };
        assert_eq!(framing("", "1.1"), Ok(Some(Framing::Length(0))));
        assert_eq!(
            framing("Content-Length: 7\r\n", "1.1"),
            Ok(Some(Framing::Length(7)))
        );
        assert_eq!(
            framing("Content-Length: 7, 7\r\nContent-Length: 7\r\n", "1.1"),
            Ok(Some(Framing::Length(7)))
        );
        assert_eq!(
            framing("Transfer-Encoding: Chunked\r\n", "1.1"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(
            framing("Content-Length: 18446744073709551615\r\n", "1.1"),
            Ok(Some(Framing::Length(u64::MAX)))
        );
        const TE: &str = "Transfer-Encoding: chunked\r\n";
        let refused = [
            (
                "Content-Length: 18446744073709551616\r\n".to_owned(),
                "1.1",
                400,
            ),
            (
                "Content-Length: 7\r\nContent-Length: 8\r\n".into(),
                "1.1",
                400,
            ),
            ("Content-Length: 7,\r\n".into(), "1.1", 400),
            ("Content-Length: \r\n".into(), "1.1", 400),
            (format!("{TE}Content-Length: 7\r\n"), "1.1", 400),
            (TE.into(), "1.0", 400),
            ("Transfer-Encoding: identity\r\n".into(), "1.1", 400),
            ("Transfer-Encoding: gzip, chunked\r\n".into(), "1.1", 501),
            (format!("{TE}{TE}"), "1.1", 400),
        ];
        for (fields, version, status) in refused {
            assert_eq!(
                framing(&fields, version).map_err(|e| e.kind().status()),
                Err(status),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn persistence_and_expectations() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap().0;
        assert!(head("GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(head("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
        assert!(!head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn an_answer_states_its_own_framing() {
        let mut out = Vec::new();
        let fields = [
            (
                HeaderName::from_static("X-Ok"),
                HeaderValue::from_static("fine"),
            ),
            (
                HeaderName::from_static("Content-Length"),
                HeaderValue::from_static("999"),
            ),
            (
                HeaderName::from_static("connection"),
                HeaderValue::from_static("keep-alive"),
            ),
        ];
        encode_head(200, &fields, 2, true, "D", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nX-Ok: fine\r\nDate: D\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        // A value that would split the answer cannot be made at all.
        assert!(HeaderValue::new("a\r\nSet-Cookie: x").is_err());
        assert!(HeaderValue::new("a\nb").is_err());
        assert!(HeaderName::new("Bad Name").is_err());
    }
}
