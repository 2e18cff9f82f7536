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
            Some("creation,creation-with-upload,creation-defer-length,termination,checksum")
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

/// A CGI creation of an upload of `length` bytes, with more variables;
/// its path (`/files/ID`), asserting a 201.
fn cgi_create(pool: &std::path::Path, length: &str, more: &[(&str, &str)]) -> String {
    let mut env = vec![
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/files"),
        ("HTTP_UPLOAD_LENGTH", length),
    ];
    env.extend_from_slice(more);
    let out = cgi(pool, &env, b"");
    assert!(out.starts_with("Status: 201 Created\r\n"), "{out}");
    let head = format!("x\r\n{out}");
    format!("/{}", header(&head, "Location").unwrap())
}

/// A CGI PATCH of `bytes` at `offset` on `path`.
fn cgi_patch(pool: &std::path::Path, path: &str, offset: &str, bytes: &[u8]) -> String {
    cgi_patch_with(pool, path, offset, &[], bytes)
}

/// A CGI PATCH of `bytes` at `offset` on `path`, with more variables.
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

/// The CGI program, one process per request, as Apache runs it: the same
/// core by translation, the upload finished by a second process.
#[test]
fn cgi_one_process_per_request() {
    let dir = common::TempDir::new("tus-cgi");
    let pool = dir.pool();
    let cgi = |env: &[(&str, &str)], body: &[u8]| cgi(&pool, env, body);
    let path = cgi_create(&pool, "5", &[]);
    let patch = |offset: &str, bytes: &[u8]| cgi_patch(&pool, &path, offset, bytes);
    let out = patch("0", b"hel");
    assert_eq!(
        out,
        "Status: 204 No Content\r\nUpload-Offset: 3\r\nTus-Resumable: 1.0.0\r\n\r\n"
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
    let path = cgi_create(&pool, "3000", &[("FILEUPLOAD_EXEC", app)]);
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
