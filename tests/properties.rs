//! Property tests with a fixed seed and a bounded number of cases: the
//! multipart parser and the core, fed generated bodies in memory, against a
//! real pool on disk.
//!
//! A small xorshift generator stands in for a property-testing crate: the
//! cases are simple to generate, a fixed seed makes every failure
//! reproducible from its case number, and no dependency is added.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fileupload::Pool;
use fileupload::app::intercept::Limits;
use fileupload::app::render::render;
use fileupload::app::{App, route};
use fileupload::model::http::{Request, Response};
use fileupload::model::identifier::Signer;
use fileupload::model::multipart::Parser;

/// xorshift64*: enough randomness for test cases, and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One part of a generated form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
}

/// RFC 2046 `bcharsnospace`, less the characters a quoted parameter would need.
const BCHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";
/// Characters of names and file names as browsers send them, `;` included.
const NAME_CHARS: &[u8] = b"abcXYZ019 _-.;,()[]@+=!~";

fn boundary(rng: &mut Rng) -> String {
    let len = 1 + rng.below(70);
    (0..len).map(|_| *rng.pick(BCHARS) as char).collect()
}

fn name(rng: &mut Rng) -> String {
    let len = 1 + rng.below(12);
    (0..len).map(|_| *rng.pick(NAME_CHARS) as char).collect()
}

/// Content that is hard on a boundary scanner: random bytes mixed with
/// line ends, dashes and prefixes of the boundary itself.
fn content(rng: &mut Rng, boundary: &str, max: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let target = rng.below(max + 1);
    while data.len() < target {
        match rng.below(6) {
            0 => data.extend_from_slice(b"\r\n"),
            1 => data.extend_from_slice(b"\r\n--"),
            2 => {
                // A proper prefix of the delimiter: never the whole of it.
                let cut = rng.below(boundary.len());
                data.extend_from_slice(b"\r\n--");
                data.extend_from_slice(&boundary.as_bytes()[..cut]);
            }
            3 => data.push(b'-'),
            _ => {
                let n = 1 + rng.below(64);
                data.extend(rng.bytes(n));
            }
        }
    }
    data.truncate(target);
    // The delimiter is CRLF "--" boundary: content must not contain it.
    let delimiter = format!("\r\n--{boundary}");
    while let Some(at) = find(&data, delimiter.as_bytes()) {
        data[at] = b'x';
    }
    data
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn form(rng: &mut Rng, boundary: &str, max_part: usize) -> Vec<Part> {
    (0..1 + rng.below(5))
        .map(|_| {
            let filename = rng.chance(60).then(|| name(rng));
            // Fields stay text, as browsers send them.
            let data = match filename {
                Some(_) => content(rng, boundary, max_part),
                None => name(rng).into_bytes(),
            };
            Part {
                name: name(rng),
                filename,
                data,
            }
        })
        .collect()
}

fn encode(parts: &[Part], boundary: &str, rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    if rng.chance(20) {
        b.extend_from_slice(b"a preamble, ignored\r\n");
    }
    for part in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(f) = &part.filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        b.extend_from_slice(disposition.as_bytes());
        b.extend_from_slice(b"\r\n");
        if part.filename.is_some() && rng.chance(50) {
            b.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(&part.data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--").as_bytes());
    if rng.chance(50) {
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// A body reader that hands out random amounts per read, 1 byte included,
/// as a socket does.
struct Chunked<'a> {
    data: &'a [u8],
    rng: Rng,
    max: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = 1 + self.rng.below(self.max);
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn parse(body: &[u8], boundary: &str, rng: Rng, max_read: usize) -> fileupload::Result<Vec<Part>> {
    let mut reader = Chunked {
        data: body,
        rng,
        max: max_read,
    };
    let mut parser = Parser::new(&mut reader, boundary, None);
    let mut parts = Vec::new();
    while let Some(mut part) = parser.next_part()? {
        let mut data = Vec::new();
        while let Some(chunk) = parser.read_chunk(&mut part)? {
            data.extend_from_slice(&chunk);
        }
        parts.push(Part {
            name: part.name.clone(),
            filename: part.filename.clone(),
            data,
        });
    }
    parser.finish()?;
    assert_eq!(parser.received(), body.len() as u64, "every byte counted");
    Ok(parts)
}

#[test]
fn any_valid_body_in_any_read_sizes_gives_the_same_parts() {
    let mut rng = Rng(0x5eed_0001);
    for case in 0..300 {
        let b = boundary(&mut rng);
        let parts = form(&mut rng, &b, 3000);
        let body = encode(&parts, &b, &mut rng);
        for (round, max_read) in [1, 2, 7, 100, 5000, body.len().max(1)]
            .into_iter()
            .enumerate()
        {
            let seed = rng.next() | 1;
            let got = parse(&body, &b, Rng(seed), max_read).unwrap_or_else(|e| {
                panic!("case {case}, round {round}: {e}; boundary {b:?}, parts {parts:?}")
            });
            assert_eq!(got, parts, "case {case}, round {round}, boundary {b:?}");
        }
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fileupload-prop-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn upload(app: &App, id: &str, boundary: &str, body: &[u8], rng: Rng) -> (u16, serde_json::Value) {
    let mut reader = Chunked {
        data: body,
        rng,
        max: 70_000,
    };
    let response = ask(
        app,
        Request {
            method: "POST".into(),
            path: "/upload".into(),
            query: format!("X-Progress-ID={id}"),
            headers: vec![(
                "Content-Type".into(),
                format!("multipart/form-data; boundary=\"{boundary}\""),
            )],
            content_length: Some(body.len() as u64),
            body: &mut reader,
            interrupt: None,
        },
    );
    let json = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", response.body));
    (response.status, json)
}

fn sha256(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn any_valid_body_through_the_core_stores_what_was_sent() {
    let root = temp_dir("core");
    let pool_dir = root.join("pool");
    let app = App::new(
        Pool::open(&pool_dir, Signer::new(None)).unwrap(),
        Limits {
            max_files: 100,
            ..Limits::default()
        },
        true,
        4,
    );
    let mut rng = Rng(0x5eed_0002);
    for case in 0..40 {
        let b = boundary(&mut rng);
        let parts = form(&mut rng, &b, 200_000);
        let body = encode(&parts, &b, &mut rng);
        let id = format!("case-{case}");
        let seed = rng.next() | 1;
        let (status, d) = upload(&app, &id, &b, &body, Rng(seed));
        assert_eq!(status, 201, "case {case}: {d}");
        let files: Vec<&Part> = parts.iter().filter(|p| p.filename.is_some()).collect();
        let stored = d["files"].as_array().unwrap();
        assert_eq!(stored.len(), files.len(), "case {case}: {d}");
        for (n, (part, info)) in files.iter().zip(stored).enumerate() {
            assert_eq!(info["field"], part.name.as_str(), "case {case}");
            assert_eq!(info["length"], part.data.len() as u64, "case {case}");
            assert_eq!(info["sha256"], sha256(&part.data).as_str(), "case {case}");
            let on_disk = fs::read(pool_dir.join(&id).join(n.to_string())).unwrap();
            assert!(
                on_disk == part.data,
                "case {case}: file {n} differs on disk"
            );
        }
        let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for part in parts.iter().filter(|p| p.filename.is_none()) {
            fields
                .entry(part.name.clone())
                .or_default()
                .push(String::from_utf8(part.data.clone()).unwrap());
        }
        assert_eq!(
            d["fields"],
            serde_json::to_value(&fields).unwrap(),
            "case {case}"
        );
        assert_eq!(d["received"], body.len() as u64, "case {case}");
    }
    fs::remove_dir_all(&root).unwrap();
}

/// A hostile body: random bytes, or a valid body damaged at random.
fn hostile_body(rng: &mut Rng, boundary: &str) -> Vec<u8> {
    let parts = form(rng, boundary, 5000);
    let mut body = encode(&parts, boundary, rng);
    match rng.below(6) {
        0 => {
            let n = rng.below(3000);
            rng.bytes(n)
        }
        1 => {
            body.truncate(rng.below(body.len() + 1));
            body
        }
        2 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(body.len());
                body[at] = rng.next() as u8;
            }
            body
        }
        3 => {
            // Names that try to climb out of the bucket, and control bytes.
            let evil = rng
                .pick(&[
                    "../../../outside/x",
                    "/etc/passwd",
                    "..\\..\\x",
                    "a\0b",
                    "\r\nX-Injected: 1",
                    "lock",
                    "status.json",
                    "0.part",
                ])
                .to_string();
            let mut b = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{evil}\"; filename=\"{evil}\"\r\n\r\n"
            )
            .into_bytes();
            b.extend_from_slice(&body);
            b
        }
        4 => {
            let at = rng.below(body.len() + 1);
            let n = rng.below(200);
            let junk = rng.bytes(n);
            body.splice(at..at, junk);
            body
        }
        _ => body,
    }
}

/// Every entry under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn random_bytes_never_panic_nor_write_outside_the_bucket() {
    let root = temp_dir("hostile");
    let pool_dir = root.join("pool");
    fs::create_dir_all(root.join("outside")).unwrap();
    let app = App::new(
        Pool::open(&pool_dir, Signer::new(None)).unwrap(),
        Limits {
            max_size: Some(20_000),
            max_files: 3,
            idle_timeout: None,
        },
        true,
        4,
    );
    let mut rng = Rng(0x5eed_0003);
    let mut ids = Vec::new();
    for case in 0..400 {
        let b = boundary(&mut rng);
        let body = hostile_body(&mut rng, &b);
        let id = format!("h{}", rng.below(40));
        let seed = rng.next() | 1;
        let (status, reply) = upload(&app, &id, &b, &body, Rng(seed));
        assert!(
            matches!(status, 201 | 400 | 413),
            "case {case}: {status} {reply}"
        );
        if status != 201 {
            assert_eq!(reply["state"], "error", "case {case}");
        }
        ids.push(id);
    }
    // Nothing outside the pool, nothing in it but buckets of the
    // identifiers used, and nothing in a bucket but the pool's own files.
    assert_eq!(tree(&root.join("outside")), Vec::<String>::new());
    let top: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top.len(), 2, "{top:?}");
    for entry in tree(&pool_dir) {
        let mut parts = entry.split('/');
        let bucket = parts.next().unwrap();
        assert!(ids.iter().any(|i| i == bucket), "stray entry {entry}");
        if let Some(file) = parts.next() {
            assert!(parts.next().is_none(), "nested entry {entry}");
            assert!(
                file == "lock" || file == "status.json" || file.parse::<usize>().is_ok(),
                "unexpected file {entry}"
            );
        }
    }
    // Every bucket's status is whole and final, and its files are complete.
    for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
        let status: serde_json::Value =
            serde_json::from_slice(&fs::read(pool_dir.join(id).join("status.json")).unwrap())
                .unwrap();
        let state = status["state"].as_str().unwrap();
        assert!(state == "done" || state == "error", "{id}: {status}");
        let files = fs::read_dir(pool_dir.join(id)).unwrap().count() - 2;
        let expected = if state == "done" {
            status["files"].as_array().unwrap().len()
        } else {
            0
        };
        assert_eq!(files, expected, "{id}: {status}");
    }
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn random_requests_never_panic() {
    let root = temp_dir("requests");
    let app = App::new(
        Pool::open(root.join("pool"), Signer::new(Some(b"k"))).unwrap(),
        Limits::default(),
        true,
        4,
    );
    let mut rng = Rng(0x5eed_0004);
    let pieces = [
        "/upload",
        "/status",
        "/clear",
        "?",
        "&",
        "=",
        "%",
        "%2e",
        "%00",
        "..",
        "/",
        "callback",
        "X-Progress-ID",
        "status",
        "clear",
        ":",
        "a",
        "é",
        "\r\n",
        "+",
    ];
    for case in 0..2000 {
        let text =
            |rng: &mut Rng| -> String { (0..rng.below(8)).map(|_| *rng.pick(&pieces)).collect() };
        let method = rng
            .pick(&["GET", "POST", "DELETE", "HEAD", "PUT", ""])
            .to_string();
        let path = format!(
            "{}{}",
            text(&mut rng),
            rng.pick(&["/upload", "/upload/status", "/upload/clear", ""])
        );
        let query = text(&mut rng);
        let mut headers = vec![("X-Progress-ID".to_string(), text(&mut rng))];
        if rng.chance(50) {
            headers.push((
                "Content-Type".into(),
                format!("multipart/form-data; boundary={}", text(&mut rng)),
            ));
        }
        headers.push(("Accept".into(), text(&mut rng)));
        let n = rng.below(100);
        let body = rng.bytes(n);
        let mut reader = &body[..];
        let response = ask(
            &app,
            Request {
                method,
                path,
                query,
                headers,
                content_length: Some(body.len() as u64),
                body: &mut reader,
                interrupt: None,
            },
        );
        assert!(
            (200..600).contains(&response.status),
            "case {case}: {}",
            response.status
        );
        for (name, value) in &response.headers {
            assert!(
                !name.contains(['\r', '\n']) && !value.contains(['\r', '\n']),
                "case {case}: header {name}: {value:?}"
            );
        }
    }
    fs::remove_dir_all(&root).unwrap();
}

/// Routes, answers and renders a request as a front end does.
fn ask(app: &App, request: Request<'_>) -> Response {
    let route = route(&request.method, &request.path, &request.query);
    render(app.handle(route, request))
}
