//! The tus 1.0.0 protocol against the built daemon, over real sockets:
//! each test asserts on status lines, headers, the status JSON and the
//! bytes stored in the pool. docs/tus.md maps each request and header to
//! the test here that proves it.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Daemon, header};
use ring::digest;
use serde_json::Value;

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const STREAM: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

/// An answer: the head as text and the body.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {:?}", self.head))
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A request's head, with `Content-Length` when a body is given.
fn request_head(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<usize>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(length) = body {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads one answer; a HEAD answer has no body whatever its length says.
fn read_answer(s: &mut TcpStream, head_only: bool) -> Answer {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = header(&head, "Content-Length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { length }];
    s.read_exact(&mut body).unwrap();
    Answer { head, body }
}

/// One request on the connection `s`, and its answer.
fn ask(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let length = (!body.is_empty() || matches!(method, "POST" | "PATCH")).then_some(body.len());
    let mut out = request_head(method, path, headers, length);
    out.extend_from_slice(body);
    s.write_all(&out).unwrap();
    read_answer(s, method == "HEAD")
}

/// One request on a new connection.
fn once(d: &Daemon, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    ask(&mut d.connect(), method, path, headers, body)
}

/// Creates an upload of `length` bytes; its path (`/files/ID`).
fn create(d: &Daemon, length: u64) -> String {
    let length = length.to_string();
    let a = once(d, "POST", "/files", &[TUS, ("Upload-Length", &length)], b"");
    assert_eq!(a.status(), 201, "{}", a.head);
    format!("/{}", a.header("Location").unwrap())
}

/// Creates an upload with all its bytes in the creation's body.
fn create_whole(d: &Daemon, bytes: &[u8]) -> Answer {
    let length = bytes.len().to_string();
    ask(
        &mut d.connect(),
        "POST",
        "/files",
        &[TUS, STREAM, ("Upload-Length", &length)],
        bytes,
    )
}

/// PATCHes `bytes` at `offset`.
fn patch(s: &mut TcpStream, path: &str, offset: u64, bytes: &[u8]) -> Answer {
    let offset = offset.to_string();
    ask(
        s,
        "PATCH",
        path,
        &[TUS, STREAM, ("Upload-Offset", &offset)],
        bytes,
    )
}

/// PATCHes `bytes` at `offset` on a new connection, with more headers.
fn patch_with(d: &Daemon, path: &str, offset: &str, more: &[(&str, &str)], bytes: &[u8]) -> Answer {
    let mut headers = vec![TUS, STREAM, ("Upload-Offset", offset)];
    headers.extend_from_slice(more);
    ask(&mut d.connect(), "PATCH", path, &headers, bytes)
}

/// A new connection with the head of a PATCH at `offset` of `length`
/// bytes sent, and none of its body.
fn begin_patch(d: &Daemon, path: &str, offset: u64, length: usize) -> TcpStream {
    let mut s = d.connect();
    let offset = offset.to_string();
    s.write_all(&request_head(
        "PATCH",
        path,
        &[TUS, STREAM, ("Upload-Offset", &offset)],
        Some(length),
    ))
    .unwrap();
    s
}

/// Asserts the answer's status and `Upload-Offset`.
fn assert_offset(a: &Answer, status: u16, offset: &str) {
    assert_eq!(
        (a.status(), a.header("Upload-Offset")),
        (status, Some(offset)),
        "{}",
        a.head
    );
}

/// HEAD's `Upload-Offset`, asserting a 200.
fn offset(d: &Daemon, path: &str) -> u64 {
    let a = once(d, "HEAD", path, &[TUS], b"");
    assert_eq!(a.status(), 200, "{}", a.head);
    a.header("Upload-Offset").unwrap().parse().unwrap()
}

/// The identifier in a `/files/ID` path.
fn id(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

fn status(d: &Daemon, path: &str) -> Value {
    once(
        d,
        "GET",
        &format!("/upload/status?X-Progress-ID={}", id(path)),
        &[],
        b"",
    )
    .json()
}

/// `n` bytes that differ from one test to the next.
fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that the upload is done with `source` stored: the status, and
/// the file on disk by the path the CLI prints.
fn assert_done(d: &Daemon, path: &str, source: &[u8]) {
    let s = status(d, path);
    assert_eq!(s["state"], "done", "{s}");
    assert_eq!(s["received"], source.len() as u64, "{s}");
    assert_eq!(s["size"], source.len() as u64, "{s}");
    assert_eq!(s["files"][0]["length"], source.len() as u64, "{s}");
    assert_eq!(s["files"][0]["sha256"], sha256(source), "{s}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(&d.pool)
        .args(["path", id(path)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stored = std::fs::read(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(sha256(&stored), sha256(source));
    assert!(stored == source);
}

/// Makes sure the PATCH under way on `s` holds the upload at `path`,
/// without a probe that could take it first: after the progress interval
/// (250 ms) one more byte, `more`, makes the writer publish its progress,
/// which a status request sees.
fn hold(d: &Daemon, path: &str, s: &mut TcpStream, more: &[u8]) {
    let before = status(d, path)["received"].as_u64().unwrap_or(0);
    sleep(Duration::from_millis(300));
    s.write_all(more).unwrap();
    eventually("the PATCH publishes its progress", || {
        status(d, path)["received"].as_u64().unwrap_or(0) > before
    });
}

/// Waits until `f` holds (the daemon finishing a request it was cut off in).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn options_says_what_is_implemented() {
    let d = Daemon::start("tus-options", &["--max-size", "2"]);
    for path in ["/files", "/app/files/", "/files/anything"] {
        let a = once(&d, "OPTIONS", path, &[], b"");
        assert_eq!(a.status(), 204, "{path}: {}", a.head);
        assert_eq!(a.header("Tus-Version"), Some("1.0.0"));
        assert_eq!(
            a.header("Tus-Extension"),
            Some(
                "creation,creation-with-upload,creation-defer-length,termination,checksum,\
                 concatenation,expiration"
            )
        );
        assert_eq!(a.header("Tus-Checksum-Algorithm"), Some("md5,sha1,sha256"));
        assert_eq!(a.header("Tus-Max-Size"), Some("2097152"));
        assert_eq!(a.header("Tus-Resumable"), None, "not on OPTIONS");
        assert_eq!(a.header("Content-Length"), None, "a 204 has none");
    }
    let d = Daemon::start("tus-options-nolimit", &[]);
    let a = once(&d, "OPTIONS", "/files", &[], b"");
    assert_eq!((a.status(), a.header("Tus-Max-Size")), (204, None));
}

#[test]
fn create_head_patch_in_chunks_then_done() {
    let d = Daemon::start("tus-chunks", &[]);
    let source = data(3 * 1024 * 1024 + 123, 1);
    // filename "report.pdf", filetype "application/pdf".
    let metadata = "filename cmVwb3J0LnBkZg==,filetype YXBwbGljYXRpb24vcGRm";
    let length = source.len().to_string();
    let a = once(
        &d,
        "POST",
        "/app/files",
        &[
            TUS,
            ("Upload-Length", &length),
            ("Upload-Metadata", metadata),
        ],
        b"",
    );
    assert_eq!(a.status(), 201, "{}", a.head);
    assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(a.header("Upload-Offset"), Some("0"));
    let location = a.header("Location").unwrap();
    assert!(location.starts_with("files/"), "{location}");
    let path = format!("/app/{location}");

    let a = once(&d, "HEAD", &path, &[TUS], b"");
    assert_eq!(a.status(), 200, "{}", a.head);
    assert_eq!(a.header("Upload-Offset"), Some("0"));
    assert_eq!(a.header("Upload-Length"), Some(length.as_str()));
    assert_eq!(a.header("Upload-Metadata"), Some(metadata));
    assert_eq!(a.header("Cache-Control"), Some("no-store"));
    assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));

    // Chunks of uneven sizes, all on one kept connection.
    let mut s = d.connect();
    let mut at = 0;
    for size in [1, 1024 * 1024 + 7, 5, 3 * 1024 * 1024] {
        let end = (at + size).min(source.len());
        let a = patch(&mut s, &path, at as u64, &source[at..end]);
        assert_eq!(a.status(), 204, "{}", a.head);
        assert_eq!(a.header("Upload-Offset"), Some(end.to_string().as_str()));
        assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
        at = end;
        if at < source.len() {
            assert_eq!(offset(&d, &path), at as u64);
            // Between requests no one writes, and that is no interruption.
            let st = status(&d, &path);
            assert_eq!(st["state"], "uploading", "{st}");
            assert_eq!(st["received"], at as u64);
            assert_eq!(st["size"], source.len() as u64);
        }
    }
    assert_eq!(at, source.len());
    assert_done(&d, &path, &source);
    let st = status(&d, &path);
    assert_eq!(st["filename"], "report.pdf");
    assert_eq!(st["content-type"], "application/pdf");
    assert_eq!(st["files"][0]["filename"], "report.pdf");
    assert_eq!(st["files"][0]["content-type"], "application/pdf");
    assert_eq!(st["metadata"]["filename"], "report.pdf");
    assert_eq!(st["metadata"]["filetype"], "application/pdf");
    // HEAD of a done upload: the whole length.
    assert_eq!(offset(&d, &path), source.len() as u64);
}

#[test]
fn refusals_409_415_412_404() {
    let d = Daemon::start("tus-refusals", &[]);
    let path = create(&d, 10);
    let mut s = d.connect();
    assert_eq!(patch(&mut s, &path, 0, b"abc").status(), 204);
    // Another offset than the upload's: 409, nothing written.
    for wrong in [0, 2, 4, 10] {
        let a = patch(&mut d.connect(), &path, wrong, b"x");
        assert_eq!(a.status(), 409, "{wrong}: {}", a.head);
        assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
    }
    assert_eq!(offset(&d, &path), 3);
    // Another content type: 415.
    for ct in [
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ] {
        let a = ask(
            &mut d.connect(),
            "PATCH",
            &path,
            &[TUS, ("Content-Type", ct), ("Upload-Offset", "3")],
            b"x",
        );
        assert_eq!(a.status(), 415, "{ct}: {}", a.head);
    }
    // Another version, or none: 412 with the version spoken.
    for version in [Some("0.2.2"), Some("1.0"), None] {
        let mut headers = vec![STREAM, ("Upload-Offset", "3")];
        headers.extend(version.map(|v| ("Tus-Resumable", v)));
        let a = ask(&mut d.connect(), "PATCH", &path, &headers, b"x");
        assert_eq!(a.status(), 412, "{version:?}: {}", a.head);
        assert_eq!(a.header("Tus-Version"), Some("1.0.0"));
        let a = once(&d, "HEAD", &path, &headers[2..], b"");
        assert_eq!(a.status(), 412, "{version:?}: {}", a.head);
    }
    assert_eq!(offset(&d, &path), 3);
    // Malformed offsets: 400.
    for bad in ["-1", "+3", "3.0", "0x3", ""] {
        let a = patch_with(&d, &path, bad, &[], b"x");
        assert_eq!(a.status(), 400, "{bad:?}: {}", a.head);
    }
    // Bytes beyond the length: 413, none kept.
    assert_eq!(patch(&mut d.connect(), &path, 3, &[7; 8]).status(), 413);
    assert_eq!(offset(&d, &path), 3);
    // Unknown IDs, and names that are no identifier: 404.
    for unknown in [
        "/files/0123456789abcdef",
        "/files/..",
        "/files/a%2Fb",
        "/files/x:y",
    ] {
        assert_eq!(
            once(&d, "HEAD", unknown, &[TUS], b"").status(),
            404,
            "{unknown}"
        );
        assert_eq!(
            patch(&mut d.connect(), unknown, 0, b"x").status(),
            404,
            "{unknown}"
        );
        assert_eq!(
            once(&d, "DELETE", unknown, &[TUS], b"").status(),
            404,
            "{unknown}"
        );
    }
    // A multipart upload's identifier is no tus upload.
    let form = common::one_file("a.txt", b"hi");
    let a = ask(
        &mut d.connect(),
        "POST",
        "/upload?X-Progress-ID=multi",
        &[("Content-Type", common::FORM)],
        &form,
    );
    assert_eq!(a.status(), 201);
    assert_eq!(once(&d, "HEAD", "/files/multi", &[TUS], b"").status(), 404);
    // Termination: 204, then 404, and the bucket is gone.
    let a = once(&d, "DELETE", &path, &[TUS], b"");
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(once(&d, "HEAD", &path, &[TUS], b"").status(), 404);
    assert_eq!(patch(&mut d.connect(), &path, 3, b"x").status(), 404);
    assert_eq!(once(&d, "DELETE", &path, &[TUS], b"").status(), 404);
    assert!(!d.pool.join(id(&path)).exists());
    assert_eq!(status(&d, &path)["state"], "starting");
    // Methods a tus path does not take.
    let a = once(&d, "GET", &path, &[TUS], b"");
    assert_eq!(
        (a.status(), a.header("Allow")),
        (405, Some("OPTIONS, HEAD, PATCH, DELETE"))
    );
    let a = once(&d, "PUT", "/files", &[TUS], b"");
    assert_eq!(
        (a.status(), a.header("Allow")),
        (405, Some("OPTIONS, POST"))
    );
}

#[test]
fn creation_lengths_and_metadata() {
    let d = Daemon::start("tus-creation", &["--max-size", "1"]);
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![TUS];
        all.extend_from_slice(headers);
        once(&d, "POST", "/files", &all, b"")
    };
    for (headers, code) in [
        (vec![("Upload-Length", "-1")], 400),
        (vec![("Upload-Length", "99999999999999999999")], 400),
        (vec![("Upload-Length", "1e3")], 400),
        (vec![("Upload-Length", "1048577")], 413),
        (vec![], 400),
        (vec![("Upload-Defer-Length", "2")], 400),
        (
            vec![("Upload-Length", "1"), ("Upload-Defer-Length", "1")],
            400,
        ),
        (
            vec![
                ("Upload-Length", "1"),
                ("Upload-Metadata", "filename not*base64"),
            ],
            400,
        ),
        (
            vec![("Upload-Length", "1"), ("Upload-Metadata", "a Zg==,a Zg==")],
            400,
        ),
        (
            vec![("Upload-Length", "1"), ("Upload-Metadata", "k\u{1}ey Zg==")],
            400,
        ),
        (
            vec![("Upload-Length", "1"), ("Upload-Metadata", "a Zg==,,b")],
            400,
        ),
    ] {
        let a = post(&headers);
        assert_eq!(a.status(), code, "{headers:?}: {}", a.head);
        assert_eq!(a.header("Location"), None);
    }
    // Nothing was made by a refused creation.
    assert_eq!(common::entries(&d.pool).len(), 0);
    let a = post(&[("Upload-Length", "1048576")]);
    assert_eq!(a.status(), 201);
    // A name with a path and a CR LF, a type with CR LF: the description
    // has them made safe; HEAD gives the header back as it was given.
    // filename "../x\r\ny.txt", type "text/plain\r\nX: 1", flag (bare).
    let metadata = "filename Li4veA0KeS50eHQ=,type dGV4dC9wbGFpbg0KWDogMQ==,flag";
    let a = post(&[("Upload-Length", "3"), ("Upload-Metadata", metadata)]);
    assert_eq!(a.status(), 201, "{}", a.head);
    let path = format!("/{}", a.header("Location").unwrap());
    let h = once(&d, "HEAD", &path, &[TUS], b"");
    assert_eq!(h.header("Upload-Metadata"), Some(metadata));
    let st = status(&d, &path);
    assert_eq!(st["filename"], "xy.txt", "{st}");
    assert_eq!(st["content-type"], "text/plainX: 1", "{st}");
    assert_eq!(st["metadata"]["flag"], "");
    assert_eq!(st["metadata"]["filename"], "../x\r\ny.txt");
}

#[test]
fn defer_length_then_set_once() {
    let d = Daemon::start("tus-defer", &[]);
    let source = data(10, 2);
    let a = once(
        &d,
        "POST",
        "/files",
        &[TUS, ("Upload-Defer-Length", "1")],
        b"",
    );
    assert_eq!(a.status(), 201, "{}", a.head);
    let path = format!("/{}", a.header("Location").unwrap());
    let h = once(&d, "HEAD", &path, &[TUS], b"");
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"));
    assert_eq!(h.header("Upload-Length"), None);
    assert_eq!(status(&d, &path)["size"], Value::Null);
    // Bytes before the length is known.
    assert_eq!(
        patch(&mut d.connect(), &path, 0, &source[..3]).status(),
        204
    );
    // The length, with the next bytes.
    let a = patch_with(&d, &path, "3", &[("Upload-Length", "10")], &source[3..6]);
    assert_offset(&a, 204, "6");
    let h = once(&d, "HEAD", &path, &[TUS], b"");
    assert_eq!(h.header("Upload-Length"), Some("10"));
    assert_eq!(h.header("Upload-Defer-Length"), None);
    // Set once: another length is refused.
    let a = patch_with(&d, &path, "6", &[("Upload-Length", "11")], b"x");
    assert_eq!(a.status(), 400, "{}", a.head);
    assert_eq!(
        patch(&mut d.connect(), &path, 6, &source[6..]).status(),
        204
    );
    assert_done(&d, &path, &source);
}

#[test]
fn creation_with_upload() {
    let d = Daemon::start("tus-creation-with-upload", &[]);
    let source = data(200_000, 3);
    let a = ask(
        &mut d.connect(),
        "POST",
        "/files/",
        &[TUS, STREAM, ("Upload-Length", "200000")],
        &source[..150_000],
    );
    assert_eq!(a.status(), 201, "{}", a.head);
    assert_eq!(a.header("Upload-Offset"), Some("150000"));
    // From `…/files/` the location is `./ID`.
    let location = a.header("Location").unwrap();
    let path = format!("/files/{}", location.strip_prefix("./").unwrap());
    assert_eq!(offset(&d, &path), 150_000);
    assert_eq!(
        patch(&mut d.connect(), &path, 150_000, &source[150_000..]).status(),
        204
    );
    assert_done(&d, &path, &source);
    // The whole file with the creation: done at once.
    let a = create_whole(&d, b"hello");
    assert_offset(&a, 201, "5");
    assert_done(&d, &format!("/{}", a.header("Location").unwrap()), b"hello");
    // A body of another type: 415, no upload.
    let a = ask(
        &mut d.connect(),
        "POST",
        "/files",
        &[TUS, ("Content-Type", "text/plain"), ("Upload-Length", "5")],
        b"hello",
    );
    assert_eq!(a.status(), 415, "{}", a.head);
}

#[test]
fn method_override() {
    let d = Daemon::start("tus-override", &[]);
    let path = create(&d, 4);
    let over = |m| ("X-HTTP-Method-Override", m);
    let a = ask(
        &mut d.connect(),
        "POST",
        &path,
        &[TUS, STREAM, ("Upload-Offset", "0"), over("PATCH")],
        b"abcd",
    );
    assert_offset(&a, 204, "4");
    let a = ask(&mut d.connect(), "POST", &path, &[TUS, over("DELETE")], b"");
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_eq!(once(&d, "HEAD", &path, &[TUS], b"").status(), 404);
}

#[test]
fn checksums() {
    let d = Daemon::start("tus-checksum", &[]);
    let path = create(&d, 10);
    let b64 = |alg, bytes: &[u8]| {
        let digest = digest::digest(alg, bytes);
        base64(digest.as_ref())
    };
    let sum = |v: String| ("Upload-Checksum", v);
    let good = sum(format!(
        "sha1 {}",
        b64(&digest::SHA1_FOR_LEGACY_USE_ONLY, b"hello")
    ));
    let a = patch_with(&d, &path, "0", &[(good.0, &good.1)], b"hello");
    assert_offset(&a, 204, "5");
    // A mismatch: 460, the chunk discarded.
    let bad = sum(format!("sha256 {}", b64(&digest::SHA256, b"world")));
    let a = patch_with(&d, &path, "5", &[(bad.0, &bad.1)], b"w0rld");
    assert_eq!(a.status(), 460, "{}", a.head);
    assert!(
        a.head.starts_with("HTTP/1.1 460 Checksum Mismatch\r\n"),
        "{}",
        a.head
    );
    assert_eq!(offset(&d, &path), 5);
    assert_eq!(
        std::fs::metadata(d.pool.join(id(&path)).join("0.part"))
            .unwrap()
            .len(),
        5
    );
    // An algorithm not offered, no digest, an MD5 digest of SHA-1's
    // length: 400.
    for header in [
        "crc32 AAAAAA==",
        "sha256",
        "md5 qvTGHdzF6KLavt4PO0gs2a6pQ00=",
    ] {
        let a = patch_with(&d, &path, "5", &[("Upload-Checksum", header)], b"world");
        assert_eq!(a.status(), 400, "{header}: {}", a.head);
    }
    assert_eq!(offset(&d, &path), 5);
    let good = sum(format!("sha256 {}", b64(&digest::SHA256, b"world")));
    let a = patch_with(&d, &path, "5", &[(good.0, &good.1)], b"world");
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, b"helloworld");
}

/// MD5, which tus clients send: the digests are Python hashlib's, so the
/// test does not check the server's MD5 against itself.
#[test]
fn md5_checksums() {
    let d = Daemon::start("tus-md5", &[]);
    let path = create(&d, 10);
    // md5("hello").
    let hello = [("Upload-Checksum", "md5 XUFAKrxLKna5cZ2REBfFkg==")];
    assert_offset(&patch_with(&d, &path, "0", &hello, b"hello"), 204, "5");
    // md5("world") sent with "w0rld": 460, the chunk discarded.
    let world = [("Upload-Checksum", "md5 fXkwN6B2AYZXSwKC8vQ15w==")];
    let a = patch_with(&d, &path, "5", &world, b"w0rld");
    assert!(
        a.head.starts_with("HTTP/1.1 460 Checksum Mismatch\r\n"),
        "{}",
        a.head
    );
    assert_eq!(offset(&d, &path), 5);
    let part = d.pool.join(id(&path)).join("0.part");
    assert_eq!(std::fs::read(&part).unwrap(), b"hello");
    assert_offset(&patch_with(&d, &path, "5", &world, b"world"), 204, "10");
    assert_done(&d, &path, b"helloworld");
}

/// Standard base64, for the test's own checksums.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &b)| w | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_patch_cut_off_keeps_what_arrived() {
    let d = Daemon::start("tus-cut", &[]);
    let source = data(1024 * 1024, 4);
    let path = create(&d, source.len() as u64);
    let sent = 300_000;
    let mut s = begin_patch(&d, &path, 0, source.len());
    s.write_all(&source[..sent]).unwrap();
    sleep(Duration::from_millis(200));
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    // The daemon saves what arrived once it sees the close.
    eventually("HEAD reports the bytes kept", || {
        offset(&d, &path) == sent as u64
    });
    let st = status(&d, &path);
    assert_eq!(
        (st["state"].as_str(), st["received"].as_u64()),
        (Some("uploading"), Some(sent as u64)),
        "{st}"
    );
    let part = std::fs::read(d.pool.join(id(&path)).join("0.part")).unwrap();
    assert!(part == source[..sent]);
    // The resume completes it.
    let a = patch(&mut d.connect(), &path, sent as u64, &source[sent..]);
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, &source);
}

/// A PATCH whose client went silent mid-body (its connection held open, no
/// FIN) holds the upload; a resume from a new connection takes it over, as
/// tusd's lock release does: the holder is asked to stop, saves what it
/// has (flushed, the offset recorded) and answers 423; the new request goes
/// on from the saved offset: 409 when its `Upload-Offset` is another, the
/// upload written on when it is that one. From another process too: a CGI
/// request takes over from the daemon.
#[test]
fn a_resume_takes_over_from_a_silent_patch() {
    let d = Daemon::start("tus-takeover", &[]);
    let source = data(100, 11);
    let path = create(&d, 100);
    let part = d.pool.join(id(&path)).join("0.part");
    let mut first = begin_patch(&d, &path, 0, 100);
    first.write_all(&source[..40]).unwrap();
    hold(&d, &path, &mut first, &source[40..41]);
    // The client resumes from the offset it last knew (0): the holder is
    // stopped and 41 bytes are saved, so 409, within the bound.
    let start = Instant::now();
    let a = patch(&mut d.connect(), &path, 0, b"x");
    let took = start.elapsed();
    assert_eq!(a.status(), 409, "{}", a.head);
    assert!(took < Duration::from_secs(5), "{took:?}");
    let a = read_answer(&mut first, false);
    assert_eq!(a.status(), 423, "{}", a.head);
    assert_eq!(offset(&d, &path), 41);
    assert!(std::fs::read(&part).unwrap() == source[..41]);
    let st = status(&d, &path);
    assert_eq!(
        (st["state"].as_str(), st["received"].as_u64()),
        (Some("uploading"), Some(41)),
        "{st}"
    );
    // Again, and this time the resume (a CGI process: another process on
    // the same pool) sends the offset the holder saves: it goes on.
    let mut second = begin_patch(&d, &path, 41, 59);
    second.write_all(&source[41..60]).unwrap();
    hold(&d, &path, &mut second, &source[60..61]);
    let start = Instant::now();
    let out = cgi_patch(&d.pool, &path, "61", &source[61..]);
    let took = start.elapsed();
    assert!(
        out.starts_with("Status: 204 No Content\r\nUpload-Offset: 100\r\n"),
        "{out}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let a = read_answer(&mut second, false);
    assert_eq!(a.status(), 423, "{}", a.head);
    assert_done(&d, &path, &source);
}

/// The reverse: a CGI process writes the upload, its web server's pipe
/// silent (held open, nothing more sent); a resume at the daemon takes
/// over. The CGI program wakes its read of stdin (poll(2) in slices).
#[test]
fn a_resume_takes_over_from_a_silent_cgi_patch() {
    let d = Daemon::start("tus-takeover-cgi", &[]);
    let source = data(100, 13);
    let path = create(&d, 100);
    let mut holder = common::spawn_cgi(
        &d.pool,
        &[
            ("HTTP_TUS_RESUMABLE", "1.0.0"),
            ("REQUEST_METHOD", "PATCH"),
            ("PATH_INFO", path.as_str()),
            ("HTTP_UPLOAD_OFFSET", "0"),
            ("CONTENT_TYPE", "application/offset+octet-stream"),
            ("CONTENT_LENGTH", "100"),
        ],
    );
    let mut pipe = holder.stdin.take().unwrap();
    pipe.write_all(&source[..40]).unwrap();
    pipe.flush().unwrap();
    sleep(Duration::from_millis(300));
    pipe.write_all(&source[40..41]).unwrap();
    pipe.flush().unwrap();
    eventually("the CGI PATCH publishes its progress", || {
        status(&d, &path)["received"].as_u64() == Some(41)
    });
    let start = Instant::now();
    let a = patch(&mut d.connect(), &path, 41, &source[41..]);
    let took = start.elapsed();
    assert_offset(&a, 204, "100");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The holder answered 423 and ended, its pipe still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        if let Some(ended) = holder.try_wait().unwrap() {
            break ended;
        }
        if Instant::now() > deadline {
            let _ = holder.kill();
            let _ = holder.wait();
            panic!("the CGI holder never ended");
        }
        sleep(Duration::from_millis(20));
    };
    assert!(ended.success());
    let mut out = String::new();
    holder
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.starts_with("Status: 423 Locked\r\n"), "{out}");
    drop(pipe);
    assert_done(&d, &path, &source);
}

/// A termination while a PATCH waits on a silent client: the writer is
/// woken, sees the clear and removes the upload at once, rather than at
/// the idle timeout.
#[test]
fn a_delete_stops_a_silent_patch() {
    let d = Daemon::start("tus-delete-held", &[]);
    let path = create(&d, 100);
    let mut first = begin_patch(&d, &path, 0, 100);
    first.write_all(&[7; 40]).unwrap();
    hold(&d, &path, &mut first, &[7]);
    let a = once(&d, "DELETE", &path, &[TUS], b"");
    assert_eq!(a.status(), 204, "{}", a.head);
    let a = read_answer(&mut first, false);
    assert_eq!(a.status(), 410, "{}", a.head);
    assert_eq!(once(&d, "HEAD", &path, &[TUS], b"").status(), 404);
    assert!(!d.pool.join(id(&path)).exists());
}

#[test]
fn kill_9_mid_patch_then_resume() {
    let mut d = Daemon::start("tus-kill", &[]);
    let source = data(12 * 1024 * 1024, 5);
    let path = create(&d, source.len() as u64);
    // A first chunk answered: those bytes are flushed.
    let mut answered = 1024 * 1024 + 1;
    assert_eq!(
        patch(&mut d.connect(), &path, 0, &source[..answered]).status(),
        204
    );
    // Three times: a PATCH of the rest, killed after a few MiB.
    for round in 0..3 {
        let mut s = begin_patch(&d, &path, answered as u64, source.len() - answered);
        let sent = answered + (2 + round) * 1024 * 1024;
        s.write_all(&source[answered..sent]).unwrap();
        eventually("progress past the offset", || {
            status(&d, &path)["received"].as_u64().unwrap() > answered as u64
        });
        d = d.restart(&[]);
        drop(s);
        // What HEAD gives is stored, and no less than what was answered.
        let at = offset(&d, &path) as usize;
        assert!((answered..=sent).contains(&at), "round {round}: {at}");
        let part = std::fs::read(d.pool.join(id(&path)).join("0.part")).unwrap();
        assert!(
            part.len() >= at && part[..at] == source[..at],
            "round {round}: {} {at}",
            part.len()
        );
        assert_eq!(status(&d, &path)["state"], "uploading");
        answered = at;
    }
    let a = patch(
        &mut d.connect(),
        &path,
        answered as u64,
        &source[answered..],
    );
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, &source);
}

/// The CGI program on `pool` (see [`common::run_cgi`]), with
/// `Tus-Resumable: 1.0.0`.
fn cgi(pool: &std::path::Path, env: &[(&str, &str)], body: &[u8]) -> String {
    let mut all = vec![("HTTP_TUS_RESUMABLE", "1.0.0")];
    all.extend_from_slice(env);
    common::run_cgi(pool, &all, body)
}

/// A CGI PATCH of `bytes` at `offset` on `path`.
fn cgi_patch(pool: &std::path::Path, path: &str, offset: &str, bytes: &[u8]) -> String {
    cgi_patch_with(pool, path, offset, &[], bytes)
}

/// A CGI PATCH with `more` variables (settings, headers).
fn cgi_patch_with(
    pool: &std::path::Path,
    path: &str,
    offset: &str,
    more: &[(&str, &str)],
    bytes: &[u8],
) -> String {
    let length = bytes.len().to_string();
    let mut env = vec![
        ("REQUEST_METHOD", "PATCH"),
        ("PATH_INFO", path),
        ("HTTP_UPLOAD_OFFSET", offset),
        ("CONTENT_TYPE", "application/offset+octet-stream"),
        ("CONTENT_LENGTH", length.as_str()),
    ];
    env.extend_from_slice(more);
    cgi(pool, &env, bytes)
}

/// A CGI creation on `pool` of an upload of `length` bytes, `body` its
/// first bytes (creation-with-upload), with `more` variables (settings,
/// headers): the answer, asserted 201.
fn cgi_create(pool: &std::path::Path, length: usize, more: &[(&str, &str)], body: &[u8]) -> String {
    let (length, sent) = (length.to_string(), body.len().to_string());
    let mut env = vec![
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/files"),
        ("HTTP_UPLOAD_LENGTH", length.as_str()),
    ];
    env.extend_from_slice(more);
    if !body.is_empty() {
        env.push(("CONTENT_TYPE", "application/offset+octet-stream"));
        env.push(("CONTENT_LENGTH", sent.as_str()));
    }
    let out = cgi(pool, &env, body);
    assert!(out.starts_with("Status: 201 Created\r\n"), "{out}");
    out
}

/// The path (`/files/ID`) in the `Location` of a CGI creation's answer.
fn cgi_location(out: &str) -> String {
    format!("/{}", header(&cgi_head(out), "Location").unwrap())
}

/// The CGI program, one process per request, as Apache runs it: the same
/// core by translation, the upload finished by a second process.
#[test]
fn cgi_one_process_per_request() {
    let dir = common::TempDir::new("tus-cgi");
    let pool = dir.pool();
    let cgi = |env: &[(&str, &str)], body: &[u8]| cgi(&pool, env, body);
    let path = cgi_location(&cgi_create(&pool, 5, &[], b""));
    let patch = |offset: &str, bytes: &[u8]| cgi_patch(&pool, &path, offset, bytes);
    let out = patch("0", b"hel");
    let answer = cgi_head(&out);
    let expires = header(&answer, "Upload-Expires").unwrap();
    assert_eq!(
        out,
        format!(
            "Status: 204 No Content\r\nUpload-Offset: 3\r\nUpload-Expires: {expires}\r\n\
             Tus-Resumable: 1.0.0\r\n\r\n"
        )
    );
    let out = cgi(
        &[("REQUEST_METHOD", "HEAD"), ("PATH_INFO", path.as_str())],
        b"",
    );
    assert!(
        out.starts_with("Status: 200 OK\r\nUpload-Offset: 3\r\nUpload-Length: 5\r\n"),
        "{out}"
    );
    assert!(patch("0", b"x").starts_with("Status: 409 Conflict\r\n"));
    assert!(patch("3", b"lo").starts_with("Status: 204 No Content\r\nUpload-Offset: 5\r\n"));
    let stored = std::fs::read(pool.join(id(&path)).join("0")).unwrap();
    assert_eq!(stored, b"hello");
}

/// A client trickling a PATCH (less than 1 KiB per `--idle-timeout`) is
/// cut off with 408 as a multipart one is, and what it sent is kept.
#[test]
fn a_trickling_patch_is_cut_off_and_kept() {
    let d = Daemon::start("tus-trickle", &["--idle-timeout", "1s"]);
    let source = data(100, 6);
    let path = create(&d, source.len() as u64);
    let mut s = begin_patch(&d, &path, 0, source.len());
    let start = Instant::now();
    let mut sent = 0;
    while sent < source.len() && start.elapsed() < Duration::from_secs(3) {
        if s.write_all(&source[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        sleep(Duration::from_millis(100));
    }
    assert!(sent < source.len(), "never cut off");
    let a = read_answer(&mut s, false);
    assert_eq!(a.status(), 408, "{}", a.head);
    let at = offset(&d, &path) as usize;
    assert!(at > 0 && at <= sent, "{at} of {sent}");
    let part = std::fs::read(d.pool.join(id(&path)).join("0.part")).unwrap();
    assert!(part == source[..at]);
    assert_eq!(
        patch(&mut d.connect(), &path, at as u64, &source[at..]).status(),
        204
    );
    assert_done(&d, &path, &source);
}

/// A PATCH takes an upload slot (`--max-uploads`) while it runs; HEAD
/// does not.
#[test]
fn patches_count_toward_max_uploads() {
    let d = Daemon::start("tus-slots", &["--max-uploads", "1"]);
    let (a, b) = (create(&d, 10), create(&d, 10));
    let mut first = begin_patch(&d, &a, 0, 10);
    first.write_all(b"12345").unwrap();
    hold(&d, &a, &mut first, b"6");
    assert_eq!(patch(&mut d.connect(), &b, 0, b"x").status(), 503);
    let refused = patch(&mut d.connect(), &b, 0, b"x");
    assert_eq!(refused.header("Retry-After"), Some("5"));
    assert_eq!(refused.header("Tus-Resumable"), Some("1.0.0"));
    assert_eq!(offset(&d, &b), 0);
    first.write_all(b"7890").unwrap();
    assert_eq!(read_answer(&mut first, false).status(), 204);
    assert_eq!(patch(&mut d.connect(), &b, 0, b"x").status(), 204);
}

/// `gc` removes an interrupted multipart upload at any age, but an
/// unfinished tus upload only once it is older than `--older-than`: its
/// client may still resume it.
#[test]
fn gc_keeps_an_unfinished_tus_upload_until_it_is_old() {
    let d = Daemon::start("tus-gc", &[]);
    let path = create(&d, 10);
    assert_eq!(patch(&mut d.connect(), &path, 0, b"abc").status(), 204);
    let gc = |age: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
            .arg("--directory")
            .arg(&d.pool)
            .args(["gc", "--older-than", age])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    gc("1h");
    assert_eq!(offset(&d, &path), 3);
    sleep(Duration::from_millis(1100));
    gc("1s");
    assert_eq!(once(&d, "HEAD", &path, &[TUS], b"").status(), 404);
    assert!(!d.pool.join(id(&path)).exists());
}

/// An upload of length 0 is done at its creation; a PATCH body may come
/// chunked (no `Content-Length`).
#[test]
fn empty_uploads_and_chunked_patches() {
    let d = Daemon::start("tus-empty-chunked", &[]);
    let path = create(&d, 0);
    assert_done(&d, &path, b"");
    assert_eq!(offset(&d, &path), 0);
    // Nothing more fits: 413 for a byte, 204 for nothing at 0.
    assert_eq!(patch(&mut d.connect(), &path, 0, b"x").status(), 413);
    assert_eq!(patch(&mut d.connect(), &path, 0, b"").status(), 204);

    let source = data(70_000, 7);
    let path = create(&d, source.len() as u64);
    let mut s = d.connect();
    s.write_all(&request_head(
        "PATCH",
        &path,
        &[
            TUS,
            STREAM,
            ("Upload-Offset", "0"),
            ("Transfer-Encoding", "chunked"),
        ],
        None,
    ))
    .unwrap();
    for chunk in source.chunks(30_000) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        s.write_all(chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let a = read_answer(&mut s, false);
    assert_offset(&a, 204, "70000");
    assert_done(&d, &path, &source);
}

/// After a power loss the status may count bytes the file never got (a
/// progress document reaches the disk, the data does not): the file's
/// length is then the offset, and a resume from it completes the upload.
/// Simulated by cutting the data file under a recorded offset.
#[test]
fn a_data_file_shorter_than_its_status_sets_the_offset() {
    let d = Daemon::start("tus-short-file", &[]);
    let source = data(2 * 1024 * 1024, 8);
    let path = create(&d, source.len() as u64);
    assert_eq!(
        patch(&mut d.connect(), &path, 0, &source[..1_500_000]).status(),
        204
    );
    let part = d.pool.join(id(&path)).join("0.part");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .unwrap()
        .set_len(1000)
        .unwrap();
    assert_eq!(offset(&d, &path), 1000);
    let a = patch(&mut d.connect(), &path, 1000, &source[1000..]);
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, &source);
}

/// With `--backend`, the request that completes a tus upload hands the
/// application the description once, with the file's path, as a
/// multipart upload does; the tus client still gets its tus answer.
#[test]
fn the_application_gets_the_description_once() {
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/app", app.local_addr().unwrap());
    let (send, posted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in app.incoming() {
            let Ok(mut conn) = conn else { return };
            let request = read_answer(&mut conn, false);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if send.send(request).is_err() {
                return;
            }
        }
    });
    let d = Daemon::start("tus-backend", &["--backend", &url]);
    let source = data(5000, 9);
    let path = create(&d, source.len() as u64);
    assert_offset(
        &patch(&mut d.connect(), &path, 0, &source[..1000]),
        204,
        "1000",
    );
    assert!(
        posted.recv_timeout(Duration::from_millis(300)).is_err(),
        "handed over before done"
    );
    let a = patch(&mut d.connect(), &path, 1000, &source[1000..]);
    assert_offset(&a, 204, "5000");
    assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
    let request = posted.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        request.head.starts_with("POST /app HTTP/1.1\r\n"),
        "{}",
        request.head
    );
    assert_eq!(request.header("X-Progress-ID"), Some(id(&path)));
    let description: Value = request.json();
    assert_eq!(description["state"], "done");
    assert_eq!(description["files"][0]["sha256"], sha256(&source));
    let stored = std::fs::read(description["files"][0]["path"].as_str().unwrap()).unwrap();
    assert!(stored == source);
    // Once: a PATCH on the done upload hands nothing over again.
    assert_offset(&patch(&mut d.connect(), &path, 5000, b""), 204, "5000");
    assert!(
        posted.recv_timeout(Duration::from_millis(300)).is_err(),
        "handed over twice"
    );
    // A creation with the whole file hands it over too.
    let a = create_whole(&d, b"hi");
    assert_eq!(a.status(), 201, "{}", a.head);
    let description: Value = posted.recv_timeout(Duration::from_secs(10)).unwrap().json();
    assert_eq!(description["files"][0]["sha256"], sha256(b"hi"));
    // A partial upload is a piece: not handed over; its final upload is,
    // at its creation.
    let (a, b) = (create_partial(&d, b"con"), create_partial(&d, b"cat"));
    assert!(
        posted.recv_timeout(Duration::from_millis(300)).is_err(),
        "a partial upload handed over"
    );
    let r = create_final(&d, &format!("final;{a} {b}"), &[]);
    assert_offset(&r, 201, "6");
    let request = posted.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        request.header("X-Progress-ID"),
        Some(id(r.header("Location").unwrap()))
    );
    let description: Value = request.json();
    assert_eq!(description["files"][0]["sha256"], sha256(b"concat"));
}

/// A partial upload (`Upload-Concat: partial`) with all its bytes in its
/// creation; its path.
fn create_partial(d: &Daemon, bytes: &[u8]) -> String {
    let length = bytes.len().to_string();
    let a = ask(
        &mut d.connect(),
        "POST",
        "/files",
        &[
            TUS,
            STREAM,
            ("Upload-Length", &length),
            ("Upload-Concat", "partial"),
        ],
        bytes,
    );
    assert_eq!(a.status(), 201, "{}", a.head);
    format!("/{}", a.header("Location").unwrap())
}

/// `POST …/files` with `Upload-Concat: VALUE` and `more` headers, no body.
fn create_final(d: &Daemon, value: &str, more: &[(&str, &str)]) -> Answer {
    let mut headers = vec![TUS, ("Upload-Concat", value)];
    headers.extend_from_slice(more);
    once(d, "POST", "/files", &headers, b"")
}

/// The buckets in the pool (its entries but hidden ones).
fn buckets(pool: &std::path::Path) -> Vec<String> {
    let mut names = common::entries(pool);
    names.retain(|n| !n.starts_with('.'));
    names
}

/// Concatenation: two partial uploads, one sent in PATCHes and one with
/// its creation, then a final upload naming them by an absolute URL and
/// by a path (as tus-js-client sends the Location it was given): its bytes
/// are theirs in order, it is `done` with its own metadata, HEAD says
/// `Upload-Concat` of each, a PATCH on the final is 403, and the partial
/// uploads are kept (a client may DELETE them).
#[test]
fn concatenation_makes_a_final_upload_of_partial_ones() {
    let d = Daemon::start("tus-concat", &[]);
    let (first, second) = (data(300_000, 21), data(123_457, 22));
    let a = once(
        &d,
        "POST",
        "/files",
        &[
            TUS,
            ("Upload-Length", &first.len().to_string()),
            ("Upload-Concat", "partial"),
        ],
        b"",
    );
    assert_eq!(a.status(), 201, "{}", a.head);
    assert!(a.header("Upload-Expires").is_some(), "{}", a.head);
    let p1 = format!("/{}", a.header("Location").unwrap());
    let h = once(&d, "HEAD", &p1, &[TUS], b"");
    assert_eq!(h.header("Upload-Concat"), Some("partial"), "{}", h.head);
    let mut s = d.connect();
    assert_offset(&patch(&mut s, &p1, 0, &first[..100_000]), 204, "100000");
    assert_offset(
        &patch(&mut s, &p1, 100_000, &first[100_000..]),
        204,
        "300000",
    );
    let p2 = create_partial(&d, &second);
    // A partial upload is done, but not handed over: its status says so.
    let st = status(&d, &p1);
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["tus"]["upload-concat"], "partial", "{st}");
    assert_eq!(st["files"][0]["sha256"], sha256(&first), "{st}");

    let value = format!("final;http://{}{p1} {p2}", d.addr);
    let a = create_final(
        &d,
        &value,
        &[("Upload-Metadata", "filename am9pbmVkLmJpbg==")],
    );
    let total = first.len() + second.len();
    assert_offset(&a, 201, &total.to_string());
    assert_eq!(a.header("Upload-Expires"), None, "complete: no expiry");
    let path = format!("/{}", a.header("Location").unwrap());
    let whole: Vec<u8> = [first.as_slice(), second.as_slice()].concat();
    assert_done(&d, &path, &whole);
    let st = status(&d, &path);
    assert_eq!(st["files"][0]["filename"], "joined.bin", "{st}");
    assert_eq!(st["tus"]["upload-concat"], value.as_str(), "{st}");
    let h = once(&d, "HEAD", &path, &[TUS], b"");
    assert_eq!(h.status(), 200, "{}", h.head);
    assert_eq!(h.header("Upload-Concat"), Some(value.as_str()));
    assert_eq!(h.header("Upload-Offset"), Some(total.to_string().as_str()));
    assert_eq!(h.header("Upload-Length"), Some(total.to_string().as_str()));
    // A final upload is never written to: 403, whatever the offset.
    for at in [0, total as u64] {
        let a = patch(&mut d.connect(), &path, at, b"x");
        assert_eq!(a.status(), 403, "{}", a.head);
        assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
    }
    assert_done(&d, &path, &whole);
    // The partial uploads are kept: another final may use them again (the
    // same one twice too), and their client may delete them.
    let a = create_final(&d, &format!("final;{p2} {p2} {p1}"), &[]);
    assert_eq!(a.status(), 201, "{}", a.head);
    let again = format!("/{}", a.header("Location").unwrap());
    assert_done(
        &d,
        &again,
        &[second.as_slice(), second.as_slice(), first.as_slice()].concat(),
    );
    for p in [&p1, &p2] {
        assert_eq!(once(&d, "HEAD", p, &[TUS], b"").status(), 200);
        assert_eq!(once(&d, "DELETE", p, &[TUS], b"").status(), 204);
    }
    assert_done(&d, &path, &whole);
}

/// The final upload's refusals: a URL that names no upload of this pool
/// (unknown, not an identifier, a MAC that does not verify) 404; one that
/// names an upload that is not partial (an ordinary one, a final one) or a
/// partial one not complete 400; malformed values 400; a final with a
/// length or a body 400. Nothing is created by any of them.
#[test]
fn concatenation_refusals() {
    let dir = common::TempDir::new("tus-concat-key");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "concat-key").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start(
        "tus-concat-refusals",
        &["--key-file", key_file.to_str().unwrap()],
    );
    let partial = create_partial(&d, b"abc");
    let (ordinary, unfinished) = (create_whole(&d, b"xyz"), create(&d, 10));
    let ordinary = format!("/{}", ordinary.header("Location").unwrap());
    let half = once(
        &d,
        "POST",
        "/files",
        &[TUS, ("Upload-Length", "10"), ("Upload-Concat", "partial")],
        b"",
    );
    let half = format!("/{}", half.header("Location").unwrap());
    assert_eq!(patch(&mut d.connect(), &half, 0, b"12345").status(), 204);
    let fin = create_final(&d, &format!("final;{partial}"), &[]);
    assert_eq!(fin.status(), 201, "{}", fin.head);
    let fin = format!("/{}", fin.header("Location").unwrap());
    let before = buckets(&d.pool);
    // The partial upload's ID without its MAC, or with another.
    let bare = partial.split(':').next().unwrap().to_owned();
    let forged = format!("{bare}:{}", "0".repeat(partial.len() - bare.len() - 1));
    let too_many = format!("final;{}", format!("{partial} ").repeat(257));
    let cases: Vec<(String, u16)> = vec![
        (format!("final;{partial} /files/{}", "f".repeat(32)), 404),
        (format!("final;{partial} /files/..%2Fx"), 404),
        (format!("final;{bare}"), 404),
        (format!("final;{forged}"), 404),
        (format!("final;/upload/{}", id(&partial)), 400),
        (format!("final;{partial} {ordinary}"), 400),
        (format!("final;{partial} {unfinished}"), 400),
        (format!("final;{fin}"), 400),
        (format!("final;{partial} {half}"), 400),
        (format!("final;{partial}?x=1"), 400),
        (format!("final;{partial}#x"), 400),
        ("final;".to_owned(), 400),
        (format!("final {partial}"), 400),
        ("partial;x".to_owned(), 400),
        (too_many, 400),
    ];
    let with = |more: (&'static str, &'static str)| (format!("final;{partial}"), vec![more], 400);
    let cases = cases
        .into_iter()
        .map(|(value, status)| (value, vec![], status))
        .chain([
            with(("Upload-Length", "3")),
            with(("Upload-Defer-Length", "1")),
        ]);
    for (value, more, expected) in cases {
        let a = create_final(&d, &value, &more);
        assert_eq!(a.status(), expected, "{value:?}: {}", a.head);
        assert_eq!(a.header("Tus-Resumable"), Some("1.0.0"));
        assert_eq!(a.header("Location"), None);
    }
    // CR/LF in the value: a bare CR over HTTP, CR LF through CGI (as a
    // web server may pass a folded or decoded header on): 400, and no
    // header of it in the answer.
    let mut s = d.connect();
    let value = format!("final;{partial}\rSet-Cookie: x=y");
    s.write_all(&request_head(
        "POST",
        "/files",
        &[TUS, ("Upload-Concat", &value)],
        Some(0),
    ))
    .unwrap();
    let a = read_answer(&mut s, false);
    assert_eq!(
        (a.status(), a.header("Set-Cookie")),
        (400, None),
        "{}",
        a.head
    );
    let value = format!("final;{partial}\r\nSet-Cookie: x=y");
    let out = cgi(
        &d.pool,
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/files"),
            ("HTTP_UPLOAD_CONCAT", &value),
            ("FILEUPLOAD_KEY_FILE", key_file.to_str().unwrap()),
        ],
        b"",
    );
    assert!(out.starts_with("Status: 400 Bad Request\r\n"), "{out}");
    assert_eq!(header(&cgi_head(&out), "Set-Cookie"), None, "{out}");
    // A body with the final upload.
    let a = ask(
        &mut d.connect(),
        "POST",
        "/files",
        &[TUS, STREAM, ("Upload-Concat", &format!("final;{partial}"))],
        b"abc",
    );
    assert_eq!(a.status(), 400, "{}", a.head);
    assert_eq!(buckets(&d.pool), before, "nothing created");
    // The upload named with its MAC is a partial one: a final is made.
    let a = create_final(&d, &format!("final;{partial} {partial}"), &[]);
    assert_offset(&a, 201, "6");
}

/// A final upload whose total exceeds `--max-size` is 413, though each
/// partial upload is within it; nothing is made.
#[test]
fn a_final_upload_over_max_size_is_413() {
    let d = Daemon::start("tus-concat-max", &["--max-size", "10K"]);
    let (a, b) = (data(6 * 1024, 31), data(4 * 1024, 32));
    let (pa, pb) = (create_partial(&d, &a), create_partial(&d, &b));
    let before = buckets(&d.pool);
    let r = create_final(&d, &format!("final;{pa} {pb} {pb}"), &[]);
    assert_eq!(r.status(), 413, "{}", r.head);
    assert_eq!(buckets(&d.pool), before);
    // At the limit exactly it is made.
    let r = create_final(&d, &format!("final;{pa} {pb}"), &[]);
    assert_offset(&r, 201, "10240");
    let path = format!("/{}", r.header("Location").unwrap());
    assert_done(&d, &path, &[a.as_slice(), b.as_slice()].concat());
}

/// Seconds since the Unix epoch now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An IMF-fixdate (`Sun, 06 Dec 2026 21:12:56 GMT`) as seconds since the
/// Unix epoch.
fn http_seconds(date: &str) -> u64 {
    let f: Vec<&str> = date.split([' ', ':']).collect();
    assert_eq!((f.len(), f[7]), (8, "GMT"), "{date:?}");
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == f[2])
    .unwrap() as i64
        + 1;
    let (day, year): (i64, i64) = (f[1].parse().unwrap(), f[3].parse().unwrap());
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let [h, m, s]: [i64; 3] = [4, 5, 6].map(|i| f[i].parse().unwrap());
    (days * 86_400 + h * 3600 + m * 60 + s) as u64
}

/// The status lines and headers a CGI answer starts with, as a head.
fn cgi_head(out: &str) -> String {
    format!("x\r\n{out}")
}

/// Expiration, by the CGI program (no sweep runs there, so each request
/// finds what it finds): an unfinished upload's creation, PATCH and HEAD
/// say `Upload-Expires`, `--expire-after` from the last write (the status
/// records the same time); past it HEAD, PATCH and DELETE answer 410 and
/// remove the bucket, and then 404. A complete upload does not expire.
#[test]
fn an_unfinished_upload_expires_with_410() {
    let dir = common::TempDir::new("tus-expire");
    let pool = dir.pool();
    let expire = ("FILEUPLOAD_EXPIRE_AFTER", "2s");
    let head = |path: &str| {
        cgi(
            &pool,
            &[("REQUEST_METHOD", "HEAD"), ("PATH_INFO", path), expire],
            b"",
        )
    };
    let before = unix_now();
    let out = cgi_create(&pool, 10, &[("FILEUPLOAD_EXPIRE_AFTER", "2s")], b"");
    let created = http_seconds(header(&cgi_head(&out), "Upload-Expires").unwrap());
    assert!(
        created >= before + 2 && created <= unix_now() + 3,
        "{before} {created}"
    );
    let path = cgi_location(&out);
    let other = cgi_location(&cgi_create(
        &pool,
        10,
        &[("FILEUPLOAD_EXPIRE_AFTER", "2s")],
        b"",
    ));
    let third = cgi_location(&cgi_create(
        &pool,
        10,
        &[("FILEUPLOAD_EXPIRE_AFTER", "2s")],
        b"",
    ));
    // Complete at once: no expiry.
    let out = cgi_create(&pool, 2, &[("FILEUPLOAD_EXPIRE_AFTER", "2s")], b"ok");
    assert_eq!(header(&cgi_head(&out), "Upload-Expires"), None, "{out}");
    let done = cgi_location(&out);
    // A write a second later moves the time on.
    sleep(Duration::from_millis(1100));
    let out = cgi_patch_with(&pool, &path, "0", &[expire], b"abc");
    assert!(out.starts_with("Status: 204 No Content\r\n"), "{out}");
    let patched = http_seconds(header(&cgi_head(&out), "Upload-Expires").unwrap());
    assert!(patched > created, "{created} {patched}");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(&pool)
        .args(["status", id(&path)])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["tus"]["expires"], patched, "{status}");
    // HEAD says the same time until it has passed; then 410, once.
    let start = Instant::now();
    let gone = loop {
        let out = head(&path);
        if !out.starts_with("Status: 200 OK\r\n") {
            break out;
        }
        let said = http_seconds(header(&cgi_head(&out), "Upload-Expires").unwrap());
        assert_eq!(said, patched, "{out}");
        assert!(start.elapsed() < Duration::from_secs(10), "never expired");
        sleep(Duration::from_millis(100));
    };
    assert!(gone.starts_with("Status: 410 Gone\r\n"), "{gone}");
    assert!(unix_now() >= patched);
    assert!(!pool.join(id(&path)).exists(), "its bytes removed");
    assert!(head(&path).starts_with("Status: 404 Not Found\r\n"));
    // The other one expired untouched: a PATCH finds it so.
    let out = cgi_patch(&pool, &other, "0", b"x");
    assert!(out.starts_with("Status: 410 Gone\r\n"), "{out}");
    assert!(!pool.join(id(&other)).exists());
    // And a DELETE.
    let out = cgi(
        &pool,
        &[
            ("REQUEST_METHOD", "DELETE"),
            ("PATH_INFO", third.as_str()),
            expire,
        ],
        b"",
    );
    assert!(out.starts_with("Status: 410 Gone\r\n"), "{out}");
    assert!(!pool.join(id(&third)).exists());
    // The complete one stays.
    assert!(head(&done).starts_with("Status: 200 OK\r\n"));
}

/// The daemon sweeps expired uploads itself, untouched ones included, and
/// leaves complete ones; the sweep stops with the daemon on SIGTERM.
#[test]
fn the_daemon_sweeps_expired_uploads() {
    let d = Daemon::start("tus-sweep", &["--expire-after", "1s"]);
    let path = create(&d, 10);
    assert_eq!(patch(&mut d.connect(), &path, 0, b"abc").status(), 204);
    let untouched = create(&d, 10);
    let done = create_whole(&d, b"kept");
    let done = format!("/{}", done.header("Location").unwrap());
    eventually("the sweep removes the expired uploads", || {
        !d.pool.join(id(&path)).exists() && !d.pool.join(id(&untouched)).exists()
    });
    let mut removed = Vec::new();
    while removed.len() < 2 {
        let line = d.log.recv_timeout(Duration::from_secs(10)).unwrap();
        if let Some(which) = line.strip_prefix("fileupload: removed expired upload ") {
            removed.push(which.to_owned());
        }
    }
    removed.sort();
    let mut expected = vec![id(&path).to_owned(), id(&untouched).to_owned()];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(once(&d, "HEAD", &path, &[TUS], b"").status(), 404);
    assert_eq!(offset(&d, &done), 4);
    common::terminate(d.pid());
    loop {
        let line = d.log.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.ends_with("stopped") {
            break;
        }
    }
}

/// `fileupload gc --unfinished` removes the unfinished tus uploads whose
/// time is up, and no other (one that expires later, a complete one, a
/// multipart one); `gc` wants one of its two flags.
#[test]
fn gc_unfinished_removes_expired_uploads() {
    let dir = common::TempDir::new("tus-gc-unfinished");
    let pool = dir.pool();
    let create = |length: usize, expire: &str, body: &[u8]| {
        id(&cgi_location(&cgi_create(
            &pool,
            length,
            &[("FILEUPLOAD_EXPIRE_AFTER", expire)],
            body,
        )))
        .to_owned()
    };
    let (soon, later) = (create(10, "1s", b""), create(10, "1h", b""));
    let done = create(2, "1s", b"ok");
    let gc = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
            .arg("--directory")
            .arg(&pool)
            .arg("gc")
            .args(args)
            .output()
            .unwrap()
    };
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    sleep(Duration::from_millis(2100));
    let out = gc(&["--unfinished"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{soon}\n"));
    assert_eq!(buckets(&pool), {
        let mut kept = vec![later.clone(), done.clone()];
        kept.sort();
        kept
    });
    // With --older-than too: both rules, the complete one old enough.
    let out = gc(&["--unfinished", "--older-than", "1s"]);
    assert!(out.status.success(), "{out:?}");
    let mut printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    printed.sort();
    let mut expected = vec![later, done];
    expected.sort();
    assert_eq!(printed, expected);
}

/// The FastCGI responder sweeps too (the same connection driver): an
/// upload a CGI process made on the pool it serves, expired, is removed
/// without any request; SIGTERM then stops it.
#[test]
fn the_fastcgi_responder_sweeps_expired_uploads() {
    let dir = common::TempDir::new("tus-fastcgi-sweep");
    let pool = dir.pool();
    let upload = id(&cgi_location(&cgi_create(
        &pool,
        10,
        &[("FILEUPLOAD_EXPIRE_AFTER", "1s")],
        b"",
    )))
    .to_owned();
    assert!(pool.join(&upload).exists());
    /// The responder, killed if the test fails before it stops.
    struct Responder(std::process::Child);
    impl Drop for Responder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Sweeping every second at --expire-after 1s.
    let mut responder = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(&pool)
        .args(["fastcgi", "--listen", "127.0.0.1:0", "--expire-after", "1s"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::io::BufReader::new(responder.stderr.take().unwrap());
    let mut responder = Responder(responder);
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in log.lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(next().contains("FastCGI responder listening on"));
    assert_eq!(
        next(),
        format!("fileupload: removed expired upload {upload}")
    );
    assert!(!pool.join(&upload).exists());
    common::terminate(responder.0.id());
    assert_eq!(next(), "fileupload: stopped");
    assert!(responder.0.wait().unwrap().success());
}

/// Whether the bucket's `sha256.state` names `offset`. The daemon answers
/// a PATCH once its bytes are on disk and saves the state when its hashing
/// thread is through, just after.
fn state_at(bucket: &std::path::Path, offset: usize) -> bool {
    std::fs::read(bucket.join("sha256.state")).is_ok_and(|state| {
        state.len() == 8 + 104 + 32 && state[..8] == (offset as u64).to_le_bytes()
    })
}

/// The SHA-256 is carried from one request to the next in the bucket
/// (`sha256.state`), so that completing an upload does not read the whole
/// file again, in the daemon and in another process (a CGI PATCH); a state
/// that is damaged, or for another offset, is never taken, and the file is
/// then read again.
#[test]
fn the_hash_is_carried_between_patches() {
    let d = Daemon::start("tus-hash-state", &[]);
    let source = data(3 * 1024 * 1024, 9);
    let third = source.len() / 3;
    let begin = |d: &Daemon| {
        let path = create(d, source.len() as u64);
        let a = patch(&mut d.connect(), &path, 0, &source[..third]);
        assert_offset(&a, 204, &third.to_string());
        let bucket = d.pool.join(id(&path));
        eventually("the state saved for the offset", || {
            state_at(&bucket, third)
        });
        (path, bucket)
    };

    // Carried: the state names the offset hashed up to. A byte changed on
    // disk behind the server's back, below that offset, then does not
    // reach the sha256: completion did not read the file again.
    let (path, bucket) = begin(&d);
    let part = bucket.join("0.part");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let a = patch(&mut d.connect(), &path, third as u64, &source[third..]);
    assert_offset(&a, 204, &source.len().to_string());
    let s = status(&d, &path);
    assert_eq!(s["files"][0]["sha256"], sha256(&source), "{s}");
    assert!(!bucket.join("sha256.state").exists());
    let stored = std::fs::read(bucket.join("0")).unwrap();
    assert_ne!(sha256(&stored), sha256(&source));

    // The same, the upload going on in another process: a CGI PATCH takes
    // the state the daemon's hashing thread saved.
    let (path, bucket) = begin(&d);
    let part = bucket.join("0.part");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let out = cgi_patch(&d.pool, &path, &third.to_string(), &source[third..]);
    assert!(out.starts_with("Status: 204"), "{out}");
    let s = status(&d, &path);
    assert_eq!(s["files"][0]["sha256"], sha256(&source), "{s}");

    // A state for an earlier offset (put back over the current one, once
    // that one is saved).
    let (path, bucket) = begin(&d);
    let earlier = std::fs::read(bucket.join("sha256.state")).unwrap();
    let a = patch(
        &mut d.connect(),
        &path,
        third as u64,
        &source[third..2 * third],
    );
    assert_eq!(a.status(), 204, "{}", a.head);
    eventually("the state saved for the new offset", || {
        state_at(&bucket, 2 * third)
    });
    std::fs::write(bucket.join("sha256.state"), &earlier).unwrap();
    let a = patch(
        &mut d.connect(),
        &path,
        2 * third as u64,
        &source[2 * third..],
    );
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, &source);

    // A damaged state for the right offset: one byte of the hash changed.
    let (path, bucket) = begin(&d);
    let mut damaged = std::fs::read(bucket.join("sha256.state")).unwrap();
    damaged[40] ^= 1;
    std::fs::write(bucket.join("sha256.state"), &damaged).unwrap();
    let a = patch(&mut d.connect(), &path, third as u64, &source[third..]);
    assert_eq!(a.status(), 204, "{}", a.head);
    assert_done(&d, &path, &source);
}

/// A CGI process ended by SIGTERM mid-PATCH, as Apache ends the process of
/// a request whose client went away: it saves what it received before it
/// exits, so the offset is every byte it read, not the last progress it
/// published (every 1 MiB or 250 ms), and the client sends nothing twice.
#[test]
fn a_cgi_patch_ended_by_sigterm_keeps_what_it_read() {
    let dir = common::TempDir::new("tus-cgi-sigterm");
    let pool = dir.pool();
    let source = data(3 * 1024 * 1024, 10);
    let path = cgi_location(&cgi_create(
        &pool,
        source.len(),
        &[("FILEUPLOAD_EXPIRE_AFTER", "1h")],
        b"",
    ));
    let length = source.len().to_string();
    let mut child = common::spawn_cgi(
        &pool,
        &[
            ("HTTP_TUS_RESUMABLE", "1.0.0"),
            ("REQUEST_METHOD", "PATCH"),
            ("PATH_INFO", path.as_str()),
            ("HTTP_UPLOAD_OFFSET", "0"),
            ("CONTENT_TYPE", "application/offset+octet-stream"),
            ("CONTENT_LENGTH", length.as_str()),
        ],
    );
    // 1.5 MiB at once: progress is published at 1 MiB, and the rest comes
    // well within the 250 ms after it.
    let sent = 3 * 512 * 1024;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&source[..sent]).unwrap();
    // Time to read what the pipe holds; stdin stays open, as a web server
    // keeps it while it waits for the rest of the body.
    sleep(Duration::from_millis(500));
    common::terminate(child.id());
    child.wait().unwrap();
    drop(stdin);
    let out = cgi(
        &pool,
        &[("REQUEST_METHOD", "HEAD"), ("PATH_INFO", path.as_str())],
        b"",
    );
    let answer = cgi_head(&out);
    assert_eq!(
        header(&answer, "Upload-Offset"),
        Some(sent.to_string().as_str()),
        "{answer}"
    );
    let rest = cgi_patch(&pool, &path, &sent.to_string(), &source[sent..]);
    assert!(rest.starts_with("Status: 204"), "{rest}");
    let stored = std::fs::read(pool.join(id(&path)).join("0")).unwrap();
    assert!(stored == source);
}

/// With `--exec` (CGI), the request that completes a tus upload runs the
/// application once with the description (and the file's path) on its
/// stdin, through the same hand-off as `--backend`; the tus client still
/// gets its tus answer, not the application's.
#[test]
fn the_exec_application_gets_the_description_once() {
    let dir = common::TempDir::new("tus-exec");
    let pool = dir.pool();
    let descriptions = dir.path().join("descriptions");
    let app = dir.path().join("app.sh");
    std::fs::write(
        &app,
        format!(
            "#!/bin/sh\n/bin/cat >>'{}'\necho >>'{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\napp'\n",
            descriptions.display(),
            descriptions.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let app = app.to_str().unwrap();
    let source = data(3000, 12);
    let path = cgi_location(&cgi_create(&pool, 3000, &[("FILEUPLOAD_EXEC", app)], b""));
    let patch = |offset: u64, bytes: &[u8]| {
        let offset = offset.to_string();
        cgi_patch_with(&pool, &path, &offset, &[("FILEUPLOAD_EXEC", app)], bytes)
    };
    let out = patch(0, &source[..1000]);
    assert!(
        out.starts_with("Status: 204 No Content\r\nUpload-Offset: 1000\r\n"),
        "{out}"
    );
    assert!(!descriptions.exists(), "handed over before done");
    let out = patch(1000, &source[1000..]);
    assert_eq!(
        out,
        "Status: 204 No Content\r\nUpload-Offset: 3000\r\nTus-Resumable: 1.0.0\r\n\r\n"
    );
    let handed = std::fs::read_to_string(&descriptions).unwrap();
    let lines: Vec<&str> = handed.lines().collect();
    assert_eq!(lines.len(), 1, "{handed}");
    let description: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(description["state"], "done");
    assert_eq!(description["identifier"], id(&path));
    assert_eq!(description["files"][0]["sha256"], sha256(&source));
    let stored = std::fs::read(description["files"][0]["path"].as_str().unwrap()).unwrap();
    assert!(stored == source);
    // Once: a PATCH on the done upload runs nothing again.
    let out = patch(3000, b"");
    assert!(
        out.starts_with("Status: 204 No Content\r\nUpload-Offset: 3000\r\n"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&descriptions).unwrap(), handed);
}
