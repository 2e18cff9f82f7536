//! The FastCGI 1.0 record layer, without I/O: bytes go in with
//! [`Decoder::push`], typed [`Record`]s come out of [`Decoder::next_record`], and
//! the encoders append records to a buffer. Nothing here reads or writes a
//! socket, so every malformed or truncated input can be tested as bytes,
//! and none of it can panic: a bad record is a [`ProtocolError`].

use std::fmt;

/// The protocol version this layer speaks.
pub const VERSION: u8 = 1;
/// Bytes of a record header.
pub const HEADER_LEN: usize = 8;
/// The most content bytes of one record.
pub const MAX_CONTENT: usize = u16::MAX as usize;

/// Declares the record types, each documented by its name in the
/// specification.
macro_rules! record_types {
    ($($name:ident = $value:literal,)*) => {
        $(#[doc = concat!("`FCGI_", stringify!($name), "`.")]
        pub const $name: u8 = $value;)*
    };
}

record_types! {
    BEGIN_REQUEST = 1,
    ABORT_REQUEST = 2,
    END_REQUEST = 3,
    PARAMS = 4,
    STDIN = 5,
    STDOUT = 6,
    STDERR = 7,
    DATA = 8,
    GET_VALUES = 9,
    GET_VALUES_RESULT = 10,
    UNKNOWN_TYPE = 11,
}

/// `FCGI_RESPONDER`, the one role served.
pub const RESPONDER: u16 = 1;
/// `FCGI_KEEP_CONN` in `BEGIN_REQUEST`'s flags.
const KEEP_CONN: u8 = 1;

/// `protocolStatus` of `END_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`.
    RequestComplete = 0,
    /// `FCGI_CANT_MPX_CONN`: one request at a time on a connection.
    CantMpxConn = 1,
    /// `FCGI_OVERLOADED`.
    Overloaded = 2,
    /// `FCGI_UNKNOWN_ROLE`.
    UnknownRole = 3,
}

/// A record from the web server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A request starts.
    BeginRequest {
        /// Its request id (never 0).
        id: u16,
        /// The role asked for; only [`RESPONDER`] is served.
        role: u16,
        /// Whether the connection stays open after the request.
        keep_conn: bool,
    },
    /// The web server gives up on a request.
    AbortRequest {
        /// The request id.
        id: u16,
    },
    /// Part of the request's name-value pairs; empty at their end.
    Params {
        /// The request id.
        id: u16,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Part of the request body; empty at its end.
    Stdin {
        /// The request id.
        id: u16,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Part of the filter role's data stream; empty at its end.
    Data {
        /// The request id.
        id: u16,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A query of the responder's limits, by name.
    GetValues {
        /// The names asked for.
        names: Vec<Vec<u8>>,
    },
    /// A management record of a type this layer does not know: answer it
    /// with [`unknown_type`].
    UnknownManagement {
        /// Its type.
        kind: u8,
    },
}

/// A record that breaks the protocol; the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn malformed(why: impl Into<String>) -> ProtocolError {
    ProtocolError(why.into())
}

/// Turns bytes into records. Bytes held stay below one record plus what
/// was pushed last, so memory is bounded by the caller's read size.
///
/// ```
/// use fileupload::front::fastcgi::record::{Decoder, Record};
/// let mut d = Decoder::default();
/// d.push(&[1, 5, 0, 1, 0, 2, 0, 0, b'h']);
/// assert_eq!(d.next_record(), Ok(None)); // truncated so far
/// d.push(b"i");
/// assert_eq!(d.next_record(), Ok(Some(Record::Stdin { id: 1, data: b"hi".to_vec() })));
/// assert!(d.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether no partial record is held: an end of input here is clean.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// The next whole record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record>, ProtocolError> {
        let held = &self.buf[self.start..];
        let Some(header) = held.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if header[0] != VERSION {
            return Err(malformed(format!(
                "unsupported FastCGI version {}",
                header[0]
            )));
        }
        let kind = header[1];
        let id = u16::from_be_bytes([header[2], header[3]]);
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let padding = usize::from(header[6]);
        let total = HEADER_LEN + length + padding;
        let Some(content) = held.get(HEADER_LEN..HEADER_LEN + length) else {
            return Ok(None);
        };
        if held.len() < total {
            return Ok(None);
        }
        let record = parse(kind, id, content)?;
        self.start += total;
        Ok(Some(record))
    }
}

fn parse(kind: u8, id: u16, content: &[u8]) -> Result<Record, ProtocolError> {
    if id == 0 {
        return match kind {
            GET_VALUES => Ok(Record::GetValues {
                names: decode_pairs(content)?.into_iter().map(|(n, _)| n).collect(),
            }),
            BEGIN_REQUEST | ABORT_REQUEST | PARAMS | STDIN | DATA => Err(malformed(format!(
                "record of type {kind} with request id 0"
            ))),
            kind => Ok(Record::UnknownManagement { kind }),
        };
    }
    let data = content.to_vec();
    match kind {
        BEGIN_REQUEST => match content {
            [r1, r0, flags, _, _, _, _, _] => Ok(Record::BeginRequest {
                id,
                role: u16::from_be_bytes([*r1, *r0]),
                keep_conn: flags & KEEP_CONN != 0,
            }),
            _ => Err(malformed(format!(
                "BEGIN_REQUEST with {} content bytes instead of 8",
                content.len()
            ))),
        },
        ABORT_REQUEST => Ok(Record::AbortRequest { id }),
        PARAMS => Ok(Record::Params { id, data }),
        STDIN => Ok(Record::Stdin { id, data }),
        DATA => Ok(Record::Data { id, data }),
        kind => Err(malformed(format!(
            "unexpected record of type {kind} from the web server"
        ))),
    }
}

/// A name and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Decodes name-value pairs (FastCGI 1.0 section 3.4): each length is one
/// byte below 128, else four bytes with the high bit set.
///
/// ```
/// use fileupload::front::fastcgi::record::{decode_pairs, encode_pair};
/// let mut bytes = Vec::new();
/// encode_pair(b"REQUEST_METHOD", b"GET", &mut bytes);
/// encode_pair(b"X", &[b'v'; 300], &mut bytes);
/// let pairs = decode_pairs(&bytes).unwrap();
/// assert_eq!(pairs[0], (b"REQUEST_METHOD".to_vec(), b"GET".to_vec()));
/// assert_eq!(pairs[1].1.len(), 300);
/// assert!(decode_pairs(&bytes[..bytes.len() - 1]).is_err());
/// ```
pub fn decode_pairs(mut bytes: &[u8]) -> Result<Vec<Pair>, ProtocolError> {
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let name_len = take_length(&mut bytes)?;
        let value_len = take_length(&mut bytes)?;
        let name = take(&mut bytes, name_len)?;
        let value = take(&mut bytes, value_len)?;
        pairs.push((name.to_vec(), value.to_vec()));
    }
    Ok(pairs)
}

fn take_length(bytes: &mut &[u8]) -> Result<usize, ProtocolError> {
    let first = *bytes
        .first()
        .ok_or_else(|| malformed("name-value pair truncated"))?;
    if first < 0x80 {
        *bytes = &bytes[1..];
        return Ok(usize::from(first));
    }
    let four = take(bytes, 4)?;
    let n = u32::from_be_bytes([four[0] & 0x7f, four[1], four[2], four[3]]);
    usize::try_from(n).map_err(|_| malformed("name-value length too large"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], ProtocolError> {
    if bytes.len() < n {
        return Err(malformed("name-value pair truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Appends one name-value pair.
pub fn encode_pair(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    for len in [name.len(), value.len()] {
        match u8::try_from(len) {
            Ok(short) if short < 0x80 => out.push(short),
            // Lengths past 2^31 do not fit the format; nothing of ours is
            // that long.
            _ => out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes()),
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends one record, padded to a multiple of 8 bytes as the
/// specification recommends. `content` must fit one record.
fn encode(kind: u8, id: u16, content: &[u8], out: &mut Vec<u8>) {
    let length = content.len().min(MAX_CONTENT);
    let padding = (8 - length % 8) % 8;
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(&content[..length]);
    out.extend_from_slice(&[0; 8][..padding]);
}

/// Appends `data` to a stream (`STDOUT`, `STDERR`), in as many records as
/// it takes; empty data appends nothing (see [`end_stream`]).
pub fn stream(kind: u8, id: u16, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_CONTENT) {
        encode(kind, id, chunk, out);
    }
}

/// Appends the empty record that ends a stream.
pub fn end_stream(kind: u8, id: u16, out: &mut Vec<u8>) {
    encode(kind, id, &[], out);
}

/// Appends `END_REQUEST`.
pub fn end_request(id: u16, app_status: u32, status: ProtocolStatus, out: &mut Vec<u8>) {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = status as u8;
    encode(END_REQUEST, id, &body, out);
}

/// Appends `UNKNOWN_TYPE` for a management record of type `kind`.
pub fn unknown_type(kind: u8, out: &mut Vec<u8>) {
    encode(UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0], out);
}

/// Appends `GET_VALUES_RESULT` with these pairs.
pub fn get_values_result(pairs: &[(&[u8], String)], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in pairs {
        encode_pair(name, value.as_bytes(), &mut body);
    }
    encode(GET_VALUES_RESULT, 0, &body, out);
}

/// Appends one record of any type with any request id: for tests and for
/// clients of this layer that speak the web server's side.
pub fn encode_record(kind: u8, id: u16, content: &[u8], out: &mut Vec<u8>) {
    encode(kind, id, content, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let r = role.to_be_bytes();
        encode(
            BEGIN_REQUEST,
            id,
            &[r[0], r[1], flags, 0, 0, 0, 0, 0],
            &mut out,
        );
        out
    }

    fn all(bytes: &[u8]) -> Result<Vec<Record>, ProtocolError> {
        let mut d = Decoder::default();
        d.push(bytes);
        let mut records = Vec::new();
        while let Some(r) = d.next_record()? {
            records.push(r);
        }
        assert!(d.is_empty(), "bytes left over");
        Ok(records)
    }

    #[test]
    fn a_request() {
        let mut bytes = begin(1, RESPONDER, KEEP_CONN);
        let mut params = Vec::new();
        encode_pair(b"REQUEST_METHOD", b"POST", &mut params);
        encode(PARAMS, 1, &params, &mut bytes);
        end_stream(PARAMS, 1, &mut bytes);
        stream(STDIN, 1, b"abc", &mut bytes);
        end_stream(STDIN, 1, &mut bytes);
        encode(ABORT_REQUEST, 1, &[], &mut bytes);
        assert_eq!(
            all(&bytes).unwrap(),
            vec![
                Record::BeginRequest {
                    id: 1,
                    role: RESPONDER,
                    keep_conn: true
                },
                Record::Params {
                    id: 1,
                    data: params
                },
                Record::Params {
                    id: 1,
                    data: vec![]
                },
                Record::Stdin {
                    id: 1,
                    data: b"abc".to_vec()
                },
                Record::Stdin {
                    id: 1,
                    data: vec![]
                },
                Record::AbortRequest { id: 1 },
            ]
        );
    }

    #[test]
    fn byte_by_byte() {
        let mut bytes = begin(7, 2, 0);
        stream(STDIN, 7, &[9; 100], &mut bytes);
        let mut d = Decoder::default();
        let mut records = Vec::new();
        for b in &bytes {
            d.push(&[*b]);
            while let Some(r) = d.next_record().unwrap() {
                records.push(r);
            }
        }
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            Record::BeginRequest {
                id: 7,
                role: 2,
                keep_conn: false
            }
        );
    }

    #[test]
    fn management_records() {
        let mut body = Vec::new();
        encode_pair(b"FCGI_MAX_CONNS", b"", &mut body);
        encode_pair(b"FCGI_MPXS_CONNS", b"", &mut body);
        let mut bytes = Vec::new();
        encode(GET_VALUES, 0, &body, &mut bytes);
        encode(42, 0, b"x", &mut bytes);
        assert_eq!(
            all(&bytes).unwrap(),
            vec![
                Record::GetValues {
                    names: vec![b"FCGI_MAX_CONNS".to_vec(), b"FCGI_MPXS_CONNS".to_vec()]
                },
                Record::UnknownManagement { kind: 42 },
            ]
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let mut bad = Vec::new();
        // Wrong version.
        bad.push(vec![2, STDIN, 0, 1, 0, 0, 0, 0]);
        // BEGIN_REQUEST too short and too long.
        let mut b = Vec::new();
        encode(BEGIN_REQUEST, 1, &[0, 1, 0], &mut b);
        bad.push(b);
        let mut b = Vec::new();
        encode(BEGIN_REQUEST, 1, &[0; 9], &mut b);
        bad.push(b);
        // Application records on id 0.
        for kind in [BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, DATA] {
            let mut b = Vec::new();
            encode(kind, 0, &[0; 8], &mut b);
            bad.push(b);
        }
        // Types only a responder sends, or none.
        for kind in [
            END_REQUEST,
            STDOUT,
            STDERR,
            GET_VALUES_RESULT,
            UNKNOWN_TYPE,
            0,
            200,
        ] {
            let mut b = Vec::new();
            encode(kind, 1, &[], &mut b);
            bad.push(b);
        }
        // GET_VALUES with a truncated pair.
        let mut b = Vec::new();
        encode(GET_VALUES, 0, &[0x80, 0, 0], &mut b);
        bad.push(b);
        for bytes in bad {
            assert!(all(&bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn truncated_records_wait_and_never_panic() {
        let mut bytes = begin(1, RESPONDER, 0);
        stream(STDIN, 1, &[1; 1000], &mut bytes);
        for cut in 0..bytes.len() {
            let mut d = Decoder::default();
            d.push(&bytes[..cut]);
            let mut n = 0;
            while let Ok(Some(_)) = d.next_record() {
                n += 1;
            }
            assert!(n <= 1);
            assert_eq!(d.is_empty(), cut == 0 || cut == 16);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: every byte pattern class shows
        // up across 20000 inputs.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20000 {
            let mut bytes = Vec::new();
            let len = (x % 64) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(if x.is_multiple_of(3) { 1 } else { x as u8 });
            }
            let mut d = Decoder::default();
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_record() {}
            let _ = decode_pairs(&bytes);
        }
    }

    #[test]
    fn pairs_with_long_lengths() {
        let mut bytes = Vec::new();
        encode_pair(&[b'n'; 200], &[b'v'; 70000], &mut bytes);
        assert_eq!(bytes[0], 0x80);
        let pairs = decode_pairs(&bytes).unwrap();
        assert_eq!((pairs[0].0.len(), pairs[0].1.len()), (200, 70000));
        // A length claiming 2^31 bytes is an error, not an allocation.
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff, 0]).is_err());
    }

    #[test]
    fn encoders() {
        let mut out = Vec::new();
        stream(STDOUT, 3, &vec![7; MAX_CONTENT + 10], &mut out);
        // Two records, each padded to a multiple of 8.
        assert_eq!(out.len(), 8 + MAX_CONTENT + 1 + 8 + 10 + 6);
        let mut out = Vec::new();
        end_request(3, 0, ProtocolStatus::UnknownRole, &mut out);
        assert_eq!(out, [1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        let mut out = Vec::new();
        unknown_type(42, &mut out);
        assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        get_values_result(&[(b"FCGI_MPXS_CONNS", "0".into())], &mut out);
        assert_eq!(&out[..8], [1, 10, 0, 0, 0, 18, 6, 0]);
        assert_eq!(&out[8..10], [15, 1]);
    }
}
