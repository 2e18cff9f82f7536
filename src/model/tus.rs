//! The pieces of the tus 1.0.0 resumable upload protocol (tus.io) that are
//! plain parsing: `Upload-Metadata`, the digit-only lengths and offsets,
//! and `Upload-Checksum`. No I/O; the core (`crate::app::tus`) uses them.

use std::collections::BTreeMap;

use crate::model::error::{Error, ErrorKind, Result};
use crate::model::status::{clean_filename, strip_controls};

/// The protocol version this server speaks, for `Tus-Resumable` and
/// `Tus-Version`.
pub const VERSION: &str = "1.0.0";

/// The content type of a tus `PATCH` body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// The most digits a length or offset may have: 19 digits cover every
/// value up to `i64::MAX` (tus clients are JavaScript and Python: a
/// length beyond a signed 64-bit integer is nobody's file).
const MAX_DIGITS: usize = 19;

/// A tus `Upload-Length` or `Upload-Offset`: `1*DIGIT`, nothing else (no
/// sign, no space, no `0x`), at most `i64::MAX`.
///
/// ```
/// use fileupload::model::tus::parse_digits;
/// assert_eq!(parse_digits("Upload-Length", "1024").unwrap(), 1024);
/// assert_eq!(parse_digits("Upload-Length", "-1").unwrap_err().status(), 400);
/// assert!(parse_digits("Upload-Length", "99999999999999999999").is_err());
/// ```
pub fn parse_digits(name: &str, text: &str) -> Result<u64> {
    let bad = || Error::bad_request(format!("{name} must be 1 to {MAX_DIGITS} digits"));
    if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)
}

/// A parsed `Upload-Metadata` header: the header as the client sent it
/// (checked against the grammar, so it can be echoed), and its pairs with
/// their values decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// The header's text, trimmed; empty when there was none.
    pub raw: String,
    /// Key to decoded value (a bare key has the empty value); a value that
    /// is not UTF-8 is kept with U+FFFD for its invalid bytes, since the
    /// description is JSON text.
    pub pairs: BTreeMap<String, String>,
}

impl Metadata {
    /// The file name the client gave (`filename`), reduced as a multipart
    /// file name is (see [`clean_filename`]).
    pub fn filename(&self) -> Option<String> {
        self.pairs.get("filename").map(|n| clean_filename(n))
    }

    /// The content type the client gave (`filetype`, else `type`, the key
    /// older clients use), without control characters.
    pub fn content_type(&self) -> Option<String> {
        self.pairs
            .get("filetype")
            .or_else(|| self.pairs.get("type"))
            .map(|t| strip_controls(t))
    }
}

/// Parses `Upload-Metadata`: comma-separated pairs, each a key, then a
/// space and the value in base64, or the key alone. A key is non-empty
/// visible ASCII without comma; keys are unique; a value is canonical
/// base64 (RFC 4648 section 4, padded). Spaces around a pair are allowed
/// (HTTP's list syntax); a header of only spaces is no metadata. Anything
/// else is 400.
///
/// ```
/// use fileupload::model::tus::parse_metadata;
/// let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap();
/// assert_eq!(m.pairs["filename"], "world_domination_plan.pdf");
/// assert_eq!(m.pairs["is_confidential"], "");
/// assert!(parse_metadata("filename not*base64").is_err());
/// ```
pub fn parse_metadata(header: &str) -> Result<Metadata> {
    let raw = header.trim_matches([' ', '\t']);
    let mut metadata = Metadata {
        raw: raw.to_owned(),
        pairs: BTreeMap::new(),
    };
    if raw.is_empty() {
        return Ok(metadata);
    }
    let bad = |why: &str| Error::bad_request(format!("Upload-Metadata: {why}"));
    for pair in raw.split(',') {
        let pair = pair.trim_matches([' ', '\t']);
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty() {
            return Err(bad("a pair without a key"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(bad("a key must be visible ASCII without spaces or commas"));
        }
        let decoded = decode_base64(value).ok_or_else(|| bad("a value that is not base64"))?;
        let value = String::from_utf8_lossy(&decoded).into_owned();
        if metadata.pairs.insert(key.to_owned(), value).is_some() {
            return Err(bad("a key given twice"));
        }
    }
    Ok(metadata)
}

/// The checksum algorithms of the tus checksum extension offered, as
/// `Tus-Checksum-Algorithm` lists them: SHA-1 and SHA-256 by ring, MD5 by
/// the `md-5` crate (ring has none; tus clients send it).
pub const CHECKSUM_ALGORITHMS: &str = "md5,sha1,sha256";

/// An algorithm of [`CHECKSUM_ALGORITHMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// `md5`.
    Md5,
    /// `sha1`.
    Sha1,
    /// `sha256`.
    Sha256,
}

impl ChecksumAlgorithm {
    /// The length of its digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Md5 => 16,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// An `Upload-Checksum` header: the algorithm and the expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// The digest algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The digest the client computed of the chunk.
    pub expected: Vec<u8>,
}

impl Checksum {
    /// A digest of the chunk being received, to compare with
    /// [`Checksum::expected`].
    pub fn hasher(&self) -> ChunkHasher {
        match self.algorithm {
            ChecksumAlgorithm::Md5 => ChunkHasher::Md5(<md5::Md5 as md5::Digest>::new()),
            ChecksumAlgorithm::Sha1 => ChunkHasher::Ring(ring::digest::Context::new(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            )),
            ChecksumAlgorithm::Sha256 => {
                ChunkHasher::Ring(ring::digest::Context::new(&ring::digest::SHA256))
            }
        }
    }
}

/// A digest in progress of one of [`ChecksumAlgorithm`].
pub enum ChunkHasher {
    /// SHA-1 or SHA-256.
    Ring(ring::digest::Context),
    /// MD5.
    Md5(md5::Md5),
}

impl ChunkHasher {
    /// Hashes more of the chunk.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ChunkHasher::Ring(context) => context.update(bytes),
            ChunkHasher::Md5(md5) => md5::Digest::update(md5, bytes),
        }
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Vec<u8> {
        match self {
            ChunkHasher::Ring(context) => context.finish().as_ref().to_vec(),
            ChunkHasher::Md5(md5) => md5::Digest::finalize(md5).to_vec(),
        }
    }
}

/// Parses `Upload-Checksum: ALGORITHM BASE64`. An algorithm not in
/// [`CHECKSUM_ALGORITHMS`] is 400 (the extension's answer), as is a
/// malformed value or a digest of the wrong length.
pub fn parse_checksum(header: &str) -> Result<Checksum> {
    let bad = |why: &str| Error::bad_request(format!("Upload-Checksum: {why}"));
    let (name, value) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("expected an algorithm and a base64 digest"))?;
    let algorithm = match name {
        "md5" => ChecksumAlgorithm::Md5,
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        _ => {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "Upload-Checksum: unsupported algorithm (supported: {CHECKSUM_ALGORITHMS})"
                ),
            ));
        }
    };
    let expected = decode_base64(value).ok_or_else(|| bad("a digest that is not base64"))?;
    if expected.len() != algorithm.output_len() {
        return Err(bad("a digest of the wrong length"));
    }
    Ok(Checksum {
        algorithm,
        expected,
    })
}

/// Decodes canonical padded base64 (RFC 4648 section 4); `None` for
/// anything else (a wrong length, a byte outside the alphabet, padding in
/// the middle, bits set in the padding).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (n, quad) in bytes.chunks(4).enumerate() {
        let last = n + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut word = 0u32;
        for &b in &quad[..4 - pad] {
            word = word << 6 | value(b)?;
        }
        word <<= 6 * pad as u32;
        let [_, a, b, c] = word.to_be_bytes();
        match pad {
            0 => out.extend_from_slice(&[a, b, c]),
            1 if c == 0 => out.extend_from_slice(&[a, b]),
            2 if b == 0 && c == 0 => out.push(a),
            _ => return None,
        }
    }
    Some(out)
}

/// The most partial uploads one final upload may name: tus-js-client's
/// `parallelUploads` makes a handful; a longer list is refused (400)
/// before any is looked up.
pub const MAX_PARTS: usize = 256;

/// The value of `Upload-Concat` on a partial upload.
pub const PARTIAL: &str = "partial";

/// An `Upload-Concat` header (the concatenation extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// `partial`: a piece of a later final upload.
    Partial,
    /// `final;URL URL…`: the upload made of partial ones.
    Final {
        /// Each partial upload's ID as it stands in its URL (still
        /// percent-encoded), in order.
        ids: Vec<String>,
        /// The header's value rebuilt from the checked URLs (`final;`, the
        /// URLs joined by one space): what HEAD gives back.
        value: String,
    },
}

/// Parses `Upload-Concat`: `partial`, or `final;` and a space-separated
/// list of one to [`MAX_PARTS`] partial uploads' URLs, each absolute
/// (`http://host/…/files/ID`) or a path (`/…/files/ID`, `files/ID`,
/// `./ID`), of visible ASCII, with no query or fragment. Anything else is
/// 400. The host of an absolute URL is not compared with ours (a proxy may
/// rename it): the ID is looked up in this pool, and under a key only an
/// `ID:MAC` its creator was given names it.
///
/// ```
/// use fileupload::model::tus::{parse_concat, Concat};
/// assert_eq!(parse_concat("partial").unwrap(), Concat::Partial);
/// let Concat::Final { ids, value } = parse_concat("final;http://h/files/a ./b").unwrap() else {
///     panic!()
/// };
/// assert_eq!((ids, value.as_str()), (vec!["a".to_owned(), "b".to_owned()], "final;http://h/files/a ./b"));
/// assert!(parse_concat("final;/files/a?x=1").is_err());
/// ```
pub fn parse_concat(header: &str) -> Result<Concat> {
    let header = header.trim_matches([' ', '\t']);
    if header == PARTIAL {
        return Ok(Concat::Partial);
    }
    let bad = |why: &str| Error::bad_request(format!("Upload-Concat: {why}"));
    let list = header
        .strip_prefix("final;")
        .ok_or_else(|| bad("expected partial, or final; and the partial uploads' URLs"))?;
    let urls: Vec<&str> = list.split(' ').filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err(bad("a final upload names no partial upload"));
    }
    if urls.len() > MAX_PARTS {
        return Err(bad(&format!("more than {MAX_PARTS} partial uploads")));
    }
    let ids = urls
        .iter()
        .map(|url| partial_id(url).map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("a URL that is not an upload's (…/files/ID)"))?;
    Ok(Concat::Final {
        ids,
        value: format!("final;{}", urls.join(" ")),
    })
}

/// The ID at the end of a partial upload's URL; see [`parse_concat`].
fn partial_id(url: &str) -> Option<&str> {
    if !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains(['?', '#']) {
        return None;
    }
    let path = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            &rest[rest.find('/')?..]
        }
        _ => url,
    };
    let (before, id) = path.rsplit_once('/')?;
    let under_files = before == "." || before == "files" || before.ends_with("/files");
    (under_files && !id.is_empty() && id != "." && id != "..").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("/+8=").unwrap(), [0xff, 0xef]);
        for bad in [
            "Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v!", "Zm 9", "Zm9v\n",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn metadata_pairs() {
        let m = parse_metadata("filename cmVwb3J0LnBkZg==, filetype YXBwbGljYXRpb24vcGRm,empty")
            .unwrap();
        assert_eq!(m.filename().as_deref(), Some("report.pdf"));
        assert_eq!(m.content_type().as_deref(), Some("application/pdf"));
        assert_eq!(m.pairs["empty"], "");
        assert_eq!(m.pairs.len(), 3);
        assert_eq!(
            m.raw,
            "filename cmVwb3J0LnBkZg==, filetype YXBwbGljYXRpb24vcGRm,empty"
        );
        // `type` when there is no `filetype`; `filetype` wins over it.
        let m = parse_metadata("type dGV4dC9wbGFpbg==").unwrap();
        assert_eq!(m.content_type().as_deref(), Some("text/plain"));
        let m = parse_metadata("type dGV4dC9wbGFpbg==,filetype aW1hZ2UvcG5n").unwrap();
        assert_eq!(m.content_type().as_deref(), Some("image/png"));
        // A value with a key given empty, and a header of spaces.
        assert_eq!(parse_metadata("k ").unwrap().pairs["k"], "");
        assert!(parse_metadata("  ").unwrap().pairs.is_empty());
    }

    #[test]
    fn metadata_values_are_made_safe() {
        // "../../etc/passwd" and a name with CR LF: reduced as a multipart
        // file name is.
        let m = parse_metadata("filename Li4vLi4vZXRjL3Bhc3N3ZA==").unwrap();
        assert_eq!(m.filename().as_deref(), Some("passwd"));
        let m = parse_metadata("filename YQ0KYi50eHQ=,filetype dGV4dA0KWC1Gb286IDE=").unwrap();
        assert_eq!(m.filename().as_deref(), Some("ab.txt"));
        assert_eq!(m.content_type().as_deref(), Some("textX-Foo: 1"));
        // Bytes that are not UTF-8 are kept as U+FFFD.
        assert_eq!(parse_metadata("k /w==").unwrap().pairs["k"], "\u{fffd}");
    }

    #[test]
    fn bad_metadata_is_400() {
        for bad in [
            ",",
            "a Zg==,",
            ",a Zg==",
            "a Zg==,,b",
            "a Zg",
            "a Zg== b",
            "a  Zg==",
            "a Zg==,a",
            "\u{e9} Zg==",
            "a\u{1}b Zg==",
            "a\rb",
            "key !!!!",
        ] {
            let e = parse_metadata(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn digits_only() {
        assert_eq!(parse_digits("x", "0").unwrap(), 0);
        assert_eq!(parse_digits("x", "007").unwrap(), 7);
        assert_eq!(
            parse_digits("x", "9223372036854775807").unwrap(),
            i64::MAX as u64
        );
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "0x10",
            "1e3",
            "9223372036854775808",
            "12345678901234567890",
        ] {
            assert!(parse_digits("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksums() {
        // SHA-1 of "hello".
        let c = parse_checksum("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=").unwrap();
        assert_eq!(c.expected.len(), 20);
        assert!(parse_checksum("sha256 qvTGHdzF6KLavt4PO0gs2a6pQ00=").is_err());
        assert!(parse_checksum("sha1").is_err());
        assert!(parse_checksum("sha1 ***").is_err());
        assert!(parse_checksum("crc32 AAAAAA==").is_err());
        // MD5 of "hello" (as Python's hashlib gives it), and its length
        // checked: a SHA-1 digest is no MD5 one.
        let c = parse_checksum("md5 XUFAKrxLKna5cZ2REBfFkg==").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Md5);
        assert!(parse_checksum("md5 qvTGHdzF6KLavt4PO0gs2a6pQ00=").is_err());
    }

    /// Each algorithm hashes as the reference does (digests of "hello"
    /// from Python's hashlib), fed in pieces.
    #[test]
    fn chunk_hashers_match_the_reference() {
        for header in [
            "md5 XUFAKrxLKna5cZ2REBfFkg==",
            "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=",
            "sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
        ] {
            let c = parse_checksum(header).unwrap();
            let mut h = c.hasher();
            h.update(b"he");
            h.update(b"llo");
            assert_eq!(h.finish(), c.expected, "{header}");
        }
    }
    #[test]
    fn concat_values() {
        assert_eq!(parse_concat(" partial ").unwrap(), Concat::Partial);
        let ids = |header: &str| match parse_concat(header).unwrap() {
            Concat::Final { ids, .. } => ids,
            Concat::Partial => panic!("{header:?}"),
        };
        assert_eq!(
            ids("final;https://example.org:8080/app/files/a%3A1  /files/b files/c ./d"),
            ["a%3A1", "b", "c", "d"]
        );
        let Concat::Final { value, .. } = parse_concat("final;./a   ./b").unwrap() else {
            panic!()
        };
        assert_eq!(value, "final;./a ./b");
        let many = format!("final;{}", "./a ".repeat(MAX_PARTS));
        assert_eq!(ids(&many).len(), MAX_PARTS);
        let too_many = format!("final;{}", "./a ".repeat(MAX_PARTS + 1));
        for bad in [
            "",
            "Partial",
            "final",
            "final;",
            "final; ",
            "partial;/files/a",
            "final;/files/",
            "final;/upload/a",
            "final;/a",
            "final;a",
            "final;/files/..",
            "final;/files/a?b",
            "final;/files/a#b",
            "final;/files/a\r\nX-Evil: 1",
            "final;/files/a\u{e9}",
            "final;http://host",
            too_many.as_str(),
        ] {
            assert_eq!(parse_concat(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }
}
