//! The multipart intercept alone, in memory: how fast the parser turns a
//! body into file content, on three bodies of one 100 MiB file part each.
//!
//! - `random`: random bytes (boundary-like bytes are rare);
//! - `csv`: CSV-like text with a CRLF every 50 bytes (every line end makes
//!   a parser look for a boundary);
//! - `adversarial`: `\r\n--` followed by a growing prefix of the boundary
//!   over and over, so that nearly every position is a near-boundary.
//!
//! `cargo bench --bench intercept` runs criterion. `scripts/bench` also
//! runs this binary in two other modes, chosen by environment variables:
//! `INTERCEPT_WRITE=DIR` writes the three bodies (and the boundary) to DIR
//! for Python's `python-multipart` to parse the very same bytes, and
//! `INTERCEPT_ONCE=KIND` parses one body once (`INTERCEPT_MIB` MiB of
//! content), for `valgrind --tool=callgrind` to count the instructions of
//! `parse_body` alone.

use std::hint::black_box;
use std::io::Read;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use fileupload::model::multipart::Parser;

const BOUNDARY: &str = "------------------------8f1c2b7d3e4a5f60";
const KINDS: [&str; 3] = ["random", "csv", "adversarial"];
const DEFAULT_MIB: usize = 100;

/// A fast deterministic generator: the same bodies in every run, so that
/// instruction counts compare across runs.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn content(kind: &str, len: usize) -> Vec<u8> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(len + 64);
    match kind {
        "random" => {
            while out.len() < len {
                out.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
        "csv" => {
            const DIGITS: &[u8] = b"0123456789";
            while out.len() < len {
                // 48 bytes of fields, then CRLF: a line every 50 bytes.
                let mut line = Vec::with_capacity(50);
                for field in 0..6 {
                    if field > 0 {
                        line.push(b',');
                    }
                    let r = rng.next();
                    for i in 0..7 {
                        line.push(DIGITS[((r >> (i * 6)) % 10) as usize]);
                    }
                }
                line.truncate(48);
                while line.len() < 48 {
                    line.push(b'0');
                }
                line.extend_from_slice(b"\r\n");
                out.extend_from_slice(&line);
            }
        }
        _ => {
            // Every prefix of the boundary, each cut short by a byte that
            // does not continue it: a parser must look at each and give up.
            let b = BOUNDARY.as_bytes();
            let mut k = 0;
            while out.len() < len {
                out.extend_from_slice(b"\r\n--");
                out.extend_from_slice(&b[..k]);
                out.push(b'#');
                k = (k + 1) % b.len();
            }
        }
    }
    out.truncate(len);
    out
}

fn body(kind: &str, len: usize) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{kind}.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(&content(kind, len));
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// Parses a whole body as the intercept does, dropping the content; returns
/// the content bytes seen.
#[inline(never)]
fn parse_body(body: &[u8]) -> u64 {
    let mut reader: &[u8] = body;
    let reader: &mut dyn Read = &mut reader;
    let mut parser = Parser::new(reader, BOUNDARY, None);
    let mut seen = 0u64;
    while let Ok(Some(mut part)) = parser.next_part() {
        while let Ok(Some(chunk)) = parser.read_chunk(&mut part) {
            seen += black_box(chunk).len() as u64;
        }
    }
    let _ = parser.finish();
    seen
}

fn mib() -> usize {
    std::env::var("INTERCEPT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MIB)
}

fn main() {
    if let Ok(dir) = std::env::var("INTERCEPT_WRITE") {
        let dir = std::path::Path::new(&dir);
        for kind in KINDS {
            let path = dir.join(format!("{kind}.body"));
            if let Err(e) = std::fs::write(&path, body(kind, mib() << 20)) {
                eprintln!("cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
        println!("{BOUNDARY}");
        return;
    }
    if let Ok(kind) = std::env::var("INTERCEPT_ONCE") {
        let len = mib() << 20;
        let seen = parse_body(&body(&kind, len));
        if seen != len as u64 {
            eprintln!("parsed {seen} bytes of content, expected {len}");
            std::process::exit(1);
        }
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut group = c.benchmark_group("intercept");
    group.sampling_mode(SamplingMode::Flat);
    for kind in KINDS {
        let len = mib() << 20;
        let input = body(kind, len);
        assert_eq!(parse_body(&input), len as u64, "{kind}: content lost");
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(kind, |b| b.iter(|| parse_body(black_box(&input))));
    }
    group.finish();
    // Not the intercept, but the other thing every stored byte goes
    // through: SHA-256 (ring) on one core bounds how fast one upload can
    // be stored, whatever else is done right.
    let mut group = c.benchmark_group("hash");
    group.sampling_mode(SamplingMode::Flat);
    let input = content("random", mib() << 20);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("sha256", |b| {
        b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&input)))
    });
    group.finish();
    c.final_summary();
}
