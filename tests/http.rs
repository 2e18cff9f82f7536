//! The daemon's HTTP/1.1 framing rules (RFC 9112, RFC 9110), each row
//! over a real `TcpStream` against the built binary: what a request that
//! is malformed or ambiguously framed is answered, that the connection is
//! closed after it, and that what is well framed is read as framed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{
    Daemon, closed, entries, header, multipart, read_answer, read_to_close, try_read_answer,
};

const STATUS: &str = "/upload/status?X-Progress-ID=a";

/// The status line of the first answer in `reply`.
fn status_line(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

/// How many answers `reply` holds.
fn answers(reply: &str) -> usize {
    reply.lines().filter(|l| l.starts_with("HTTP/1.1 ")).count()
}

/// Requests that must be answered with `status` and the connection
/// closed, with nothing after them read as a request: a smuggled second
/// request (`GET /x`) rides behind each.
#[test]
fn refused_and_closed() {
    let d = Daemon::start("refused", &[]);
    let smuggled = "GET /upload/status?X-Progress-ID=smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let cl = |v: &str| {
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\nhello{smuggled}")
    };
    let te = |v: &str, version: &str| {
        format!(
            "POST /upload HTTP/{version}\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n5\r\nhello\r\n0\r\n\r\n{smuggled}"
        )
    };
    let rows: Vec<(&str, String, u16)> = vec![
        ("Content-Length 1x", cl("1x"), 400),
        ("Content-Length +5", cl("+5"), 400),
        ("Content-Length -1", cl("-1"), 400),
        ("Content-Length 0x10", cl("0x10"), 400),
        (
            "Content-Length of 23 digits",
            cl("12345678901234567890123"),
            400,
        ),
        ("Content-Length 5, 6", cl("5, 6"), 400),
        ("Content-Length empty", cl(""), 400),
        (
            "two differing Content-Length fields",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!{smuggled}"
            ),
            400,
        ),
        ("Transfer-Encoding gzip", te("gzip", "1.1"), 400),
        (
            "Transfer-Encoding chunked, identity",
            te("chunked, identity", "1.1"),
            400,
        ),
        (
            "Transfer-Encoding chunked, chunked",
            te("chunked, chunked", "1.1"),
            400,
        ),
        (
            "Transfer-Encoding gzip, chunked",
            te("gzip, chunked", "1.1"),
            501,
        ),
        ("Transfer-Encoding in HTTP/1.0", te("chunked", "1.0"), 400),
        (
            "Transfer-Encoding with Content-Length",
            format!(
                "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "NUL in a field value",
            format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "CR in a field value",
            format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "obs-fold",
            format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "no Host in HTTP/1.1",
            format!("GET {STATUS} HTTP/1.1\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "two Host fields",
            format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "space before the colon",
            format!("GET {STATUS} HTTP/1.1\r\nHost : a\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "HTTP/2.0 request line",
            format!("GET {STATUS} HTTP/2.0\r\nHost: a\r\n\r\n{smuggled}"),
            505,
        ),
        (
            "garbage request line",
            format!("NOT HTTP AT ALL\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "chunk extension of 100 KB",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n{smuggled}",
                "x".repeat(100_000)
            ),
            400,
        ),
        (
            "chunk size of 17 hex digits",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "chunk size not hex",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "chunk data longer than its size",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "bare LF in chunked framing",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "trailer fields over 8 KiB",
            format!(
                "GET {STATUS} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: {}\r\n\r\n{smuggled}",
                "t".repeat(9000)
            ),
            400,
        ),
    ];
    for (name, request, status) in rows {
        let reply = d.exchange(request.as_bytes());
        assert!(
            status_line(&reply).starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {}",
            status_line(&reply)
        );
        assert_eq!(header(&reply, "Connection"), Some("close"), "{name}");
        assert!(
            !reply.contains("smuggled"),
            "{name}: the smuggled request was answered"
        );
        assert_eq!(
            reply.matches("\r\n\r\n").count(),
            1,
            "{name}: one answer only: {reply}"
        );
    }
}

#[test]
fn a_head_over_64_kib_is_431() {
    let d = Daemon::start("big-head", &[]);
    let request = format!(
        "GET {STATUS} HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let reply = d.exchange(request.as_bytes());
    assert!(
        reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{}",
        status_line(&reply)
    );
    // Many fields rather than one long one.
    let mut request = format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\n");
    for i in 0..200 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    let reply = d.exchange(request.as_bytes());
    assert!(
        reply.starts_with("HTTP/1.1 431 "),
        "{}",
        status_line(&reply)
    );
}

#[test]
fn well_framed_bodies_are_read_as_framed() {
    let d = Daemon::start("framed", &[]);
    // A GET carrying a chunked body: the body is read off, and the
    // request after it answered, in order.
    let mut s = d.connect();
    s.write_all(
        b"GET /upload/status?X-Progress-ID=first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n\
          GET /upload/status?X-Progress-ID=second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
          GET /upload/status?X-Progress-ID=third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let reply = read_to_close(&mut s);
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");
    assert_eq!(
        reply.matches(r#"{"state":"starting"}"#).count(),
        3,
        "{reply}"
    );
    // Bare LF line ends in a head are parsed (RFC 9112 section 2.2).
    let reply =
        d.exchange(format!("GET {STATUS} HTTP/1.1\nHost: a\nConnection: close\n\n").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    // HTTP/1.0 with no Host: answered, then closed.
    let reply = d.exchange(format!("GET {STATUS} HTTP/1.0\r\n\r\n").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_eq!(header(&reply, "Connection"), Some("close"));
    // The absolute form a client of a proxy sends.
    let reply = d.exchange(
        format!("GET http://a{STATUS} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(reply.ends_with(r#"{"state":"starting"}"#), "{reply}");
}

#[test]
fn a_chunked_upload_is_stored_whole() {
    let d = Daemon::start("chunked-upload", &[]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let body = multipart("XX", "c.bin", &data);
    let mut request = b"POST /upload?X-Progress-ID=chunked HTTP/1.1\r\nHost: a\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for piece in body.chunks(7001) {
        request.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut s = d.connect();
    s.write_all(&request).unwrap();
    let (head, answer) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 201 Created\r\n"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(json["files"][0]["length"], 300_000);
    assert_eq!(std::fs::read(d.pool.join("chunked/0")).unwrap(), data);
    // Kept alive after a successful upload.
    s.write_all(b"GET /upload/status?X-Progress-ID=chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (head, answer) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains(r#""state":"done""#));
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let d = Daemon::start("continue", &["--max-size", "1M"]);
    let body = multipart("XX", "e.txt", b"expected");
    let mut s = d.connect();
    s.write_all(
        format!(
            "POST /upload?X-Progress-ID=expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // Nothing of the body is sent before the interim answer.
    let (head, _) = read_answer(&mut s);
    assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&body).unwrap();
    let (head, _) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 201 Created\r\n"), "{head}");
    // A refused upload is never asked for its body: the final answer
    // comes at once, and the connection ends.
    let mut s = d.connect();
    s.write_all(
        b"POST /upload?X-Progress-ID=expect-big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\
          Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 5000000\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_answer(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{head}"
    );
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert!(closed(&mut s, Duration::from_secs(5)));
    // A status request whose body the core never reads: the answer comes
    // without waiting for the body the client holds back, and the
    // connection ends.
    let mut s = d.connect();
    let started = Instant::now();
    s.write_all(
        format!(
            "GET {STATUS} HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let (head, body) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, br#"{"state":"starting"}"#);
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn head_connection_close_and_pipelining() {
    let d = Daemon::start("head", &[]);
    let mut s = d.connect();
    // HEAD: the fields GET would get, no body; then two pipelined GETs
    // answered in order, the last closing the connection.
    s.write_all(
        b"HEAD /upload/status?X-Progress-ID=h1 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /upload/status?X-Progress-ID=h2&callback=first HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /upload/status?X-Progress-ID=h3&callback=second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let reply = read_to_close(&mut s);
    let heads: Vec<&str> = reply.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(heads.len(), 3, "{reply}");
    assert!(heads[0].starts_with("200 OK\r\n"));
    assert_eq!(
        header(&format!("HTTP/1.1 {}", heads[0]), "Content-Length"),
        Some("20")
    );
    assert!(
        heads[0].ends_with("\r\n\r\n"),
        "HEAD has no body: {:?}",
        heads[0]
    );
    let first = reply.find("first(").unwrap();
    let second = reply.find("second(").unwrap();
    assert!(first < second, "answered in order");
    assert!(heads[2].contains("Connection: close\r\n"));
}

/// An upload of `length` bytes declared `text/plain`, of which only
/// `hello` is sent: refused with 415 before its body is read. The
/// connection, still open on the client's side, and the answer's head.
fn refused_as_text(d: &Daemon, id: &str, length: u64) -> (TcpStream, String) {
    let mut s = d.connect();
    write!(
        s,
        "POST /upload?X-Progress-ID={id} HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
         Content-Length: {length}\r\n\r\nhello"
    )
    .unwrap();
    let (head, _) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 415 "), "{head}");
    (s, head)
}

#[test]
fn an_upload_that_fails_closes_the_connection() {
    let d = Daemon::start("upload-error", &[]);
    let (mut s, head) = refused_as_text(&d, "bad", 5);
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert!(closed(&mut s, Duration::from_secs(5)));
    // A body cut inside its Content-Length: the upload fails, the state
    // says so, and nothing is left of its file.
    let body = multipart("XX", "cut.bin", &[7u8; 100_000]);
    let mut s = d.connect();
    s.write_all(upload_head("cut", body.len()).as_bytes())
        .unwrap();
    s.write_all(&body[..50_000]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = read_to_close(&mut s);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let status = d.exchange(
        b"GET /upload/status?X-Progress-ID=cut HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains(r#""state":"error""#), "{status}");
    assert!(!d.pool.join("cut/0").exists() && !d.pool.join("cut/0.part").exists());
}

#[test]
fn a_huge_declared_length_is_refused_without_allocating_it() {
    let d = Daemon::start("huge", &["--max-size", "1M"]);
    let reply = d.exchange(
        b"POST /upload?X-Progress-ID=huge HTTP/1.1\r\nHost: a\r\n\
          Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 1000000000000000000\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    // The daemon still serves.
    let reply = d.exchange(
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
}

/// Sends `byte` one at a time, waiting up to `pause` for an answer after
/// each, until the daemon has answered (its JSON closed) or closed, or 10 s
/// have passed; what it answered.
fn trickle(s: &mut std::net::TcpStream, byte: u8, pause: Duration) -> String {
    s.set_read_timeout(Some(pause)).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    while started.elapsed() < Duration::from_secs(10) && !reply.ends_with(b"}") {
        // Refused once the daemon has closed: the read says so.
        let _ = s.write_all(&[byte]);
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// A head trickled one byte at a time, never complete: the daemon must
/// give up within about one idle timeout of its first byte. The bytes
/// sent never end the head, whatever the timing.
#[test]
fn a_trickled_head_gets_408() {
    let d = Daemon::start("trickle", &["--idle-timeout", "1s"]);
    let mut s = d.connect();
    s.write_all(format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nX-Slow: ").as_bytes())
        .unwrap();
    let started = Instant::now();
    let reply = trickle(&mut s, b'a', Duration::from_millis(200));
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let d = Daemon::start("idle", &["--idle-timeout", "1s"]);
    let mut s = d.connect();
    s.write_all(format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let (head, _) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "));
    let started = Instant::now();
    assert!(closed(&mut s, Duration::from_secs(5)));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

/// At the connection cap the connection idle longest is closed to admit a
/// new one; when every connection is working on a request, the new one
/// gets 503 with `Retry-After`.
#[test]
fn the_connection_cap_evicts_the_oldest_idle_one() {
    let d = Daemon::start("cap", &["--max-connections", "2"]);
    let mut oldest = d.connect();
    sleep(Duration::from_millis(100));
    let mut newer = d.connect();
    sleep(Duration::from_millis(100));
    let mut third = d.connect();
    third
        .write_all(format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let (head, _) = read_answer(&mut third);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        closed(&mut oldest, Duration::from_secs(5)),
        "the oldest idle one goes"
    );
    newer
        .write_all(format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    let (head, _) = read_answer(&mut newer);
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "the newer one stays: {head}"
    );
    drop(third);
    drop(newer);
    sleep(Duration::from_millis(200));
    // Two uploads in progress hold both places: a third connection is refused.
    let body = multipart("XX", "slow.bin", &[1u8; 10_000]);
    let start = |id: &str| {
        let mut s = d.connect();
        s.write_all(
            format!(
                "POST /upload?X-Progress-ID={id} HTTP/1.1\r\nHost: a\r\n\
                 Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        s.write_all(&body[..100]).unwrap();
        s
    };
    let mut busy = [start("busy-1"), start("busy-2")];
    sleep(Duration::from_millis(300));
    let mut refused = d.connect();
    let asked = Instant::now();
    let reply = read_to_close(&mut refused);
    assert!(
        reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{reply}"
    );
    // At once, never left hanging.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(header(&reply, "Retry-After"), Some("5"));
    assert_eq!(header(&reply, "Connection"), Some("close"));
    assert!(
        reply.ends_with(
            r#"{"error":"too many connections; try again","state":"error","status":503}"#
        ),
        "{reply}"
    );
    for s in &mut busy {
        s.write_all(&body[100..]).unwrap();
        let (head, _) = read_answer(s);
        assert!(head.starts_with("HTTP/1.1 201 "), "{head}");
    }
}

#[test]
fn answers_carry_a_date_and_their_length() {
    let d = Daemon::start("fields", &[]);
    let reply = d.exchange(
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let date = header(&reply, "Date").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        header(&reply, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(answers(&reply), 1);
}

/// `--listen fd:0`: the listening socket handed over as standard input,
/// as systemd's socket activation (`StandardInput=socket`) and spawn-fcgi
/// do, is served like one the daemon opened.
#[test]
fn an_inherited_listening_socket_is_served() {
    let dir = common::TempDir::new("inherited");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(dir.path().join("pool"))
        .args(["serve", "--listen", "fd:0"])
        .stdin(std::os::fd::OwnedFd::from(listener))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let reply = read_to_close(&mut s);
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with(r#"{"state":"starting"}"#), "{reply}");
    // A descriptor that is not a listening socket is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(dir.path().join("pool"))
        .args(["serve", "--listen", "fd:0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a listening socket"), "{err}");
}

/// A flood of ten times `--max-connections`, half silent, half sending a
/// head one byte at a time, on a daemon whose idle timeout outlasts the
/// test: status requests on new connections are all answered, the
/// daemon's threads and sockets come down to the cap, and it serves on.
#[test]
fn a_connection_flood_keeps_no_status_request_out() {
    const MAX: usize = 16;
    let d = Daemon::start(
        "flood",
        &[
            "--idle-timeout",
            "30s",
            "--max-connections",
            "16",
            "--max-uploads",
            "2",
        ],
    );
    let mut flood = Vec::new();
    let more = |flood: &mut Vec<std::net::TcpStream>, n: usize| {
        for i in 0..n {
            if let Ok(mut s) = std::net::TcpStream::connect(d.addr) {
                if i % 2 == 1 {
                    let _ = s.write_all(b"GET /upload/status?X-Progress-ID=flood HTTP/1.1\r\n");
                }
                flood.push(s);
            }
        }
    };
    more(&mut flood, 10 * MAX);
    for _ in 0..20 {
        for s in flood.iter_mut().skip(1).step_by(2) {
            let _ = s.write_all(b"X");
        }
        let reply = d.exchange(
            b"GET /upload/status?X-Progress-ID=during HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with(r#"{"state":"starting"}"#), "{reply}");
        more(&mut flood, MAX / 2);
    }
    assert!(flood.len() >= 10 * MAX, "the flood opened {}", flood.len());
    // The evicted connections' threads end as they are shut down: within
    // a moment, main, accept, the sweep of expired tus uploads, the 2
    // upload workers, the threads status connections are parked on (one
    // per CPU) and one thread per admitted connection.
    let parking = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fixed = 5 + parking;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut threads, mut sockets);
    loop {
        (threads, sockets) = (d.threads(), d.sockets());
        if threads <= MAX + fixed && sockets <= 2 * MAX + 1 || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(200));
    }
    assert!(threads <= MAX + fixed, "{threads} threads");
    // Each connection: its socket and the registry's handle to evict it.
    assert!(sockets <= 2 * MAX + 1, "{sockets} sockets");
    drop(flood);
    let reply = d.exchange(
        b"GET /upload/status?X-Progress-ID=after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.ends_with(r#"{"state":"starting"}"#), "{reply}");
}

/// A client that pipelines 500 requests with large answers and never
/// reads them holds one thread at most: the next head is read only once
/// an answer is written, so everyone else is still answered.
#[test]
fn a_client_that_never_reads_holds_one_thread() {
    let d = Daemon::start(
        "no-reader",
        &["--idle-timeout", "20s", "--max-uploads", "1"],
    );
    let mut fields = Vec::new();
    for _ in 0..100 {
        fields.extend_from_slice(b"--XX\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n");
        fields.extend(std::iter::repeat_n(b'v', 600));
        fields.extend_from_slice(b"\r\n");
    }
    fields.extend_from_slice(b"--XX--\r\n");
    let mut up = d.connect();
    up.write_all(
        format!(
            "POST /upload?X-Progress-ID=big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
            fields.len()
        )
        .as_bytes(),
    )
    .unwrap();
    up.write_all(&fields).unwrap();
    assert!(read_to_close(&mut up).starts_with("HTTP/1.1 201 "));
    // The upload's connection thread ends a moment after its close.
    let base = settled_threads(&d);
    // A receive buffer of 4 KiB, so that the daemon's writes to it stall
    // after a few answers.
    let hog = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hog.set_recv_buffer_size(4096).unwrap();
    hog.connect(&d.addr.into()).unwrap();
    let mut hog = std::net::TcpStream::from(hog);
    let request = b"GET /upload/status?X-Progress-ID=big HTTP/1.1\r\nHost: a\r\n\r\n";
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    for _ in 0..500 {
        if hog.write_all(request).is_err() {
            break;
        }
    }
    // The answers have stalled once the hog's receive queue holds bytes
    // and stops growing.
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer given.
        let r = unsafe { libc::ioctl(hog.as_raw_fd(), libc::FIONREAD, &mut n) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        n
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = -1;
    while Instant::now() < deadline {
        let now = queued();
        if now > 0 && now == last {
            break;
        }
        last = now;
        sleep(Duration::from_millis(200));
    }
    assert!(last > 0, "no answer reached the hog");
    for _ in 0..5 {
        let asked = Instant::now();
        let reply = d.exchange(
            b"GET /upload/status?X-Progress-ID=other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
    }
    // The hog holds its own connection's thread, and nothing more.
    let held = settled_threads(&d);
    assert!(
        held <= base + 1,
        "{held} threads, {base} before the client came"
    );
}

/// The daemon's threads once their number has stopped changing: a
/// connection's thread ends a moment after the connection does.
fn settled_threads(d: &Daemon) -> usize {
    let mut last = d.threads();
    loop {
        sleep(Duration::from_millis(100));
        let now = d.threads();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// One request on `s` and its answer.
fn ask(s: &mut TcpStream, request: &str) -> (String, String) {
    s.write_all(request.as_bytes()).unwrap();
    let (head, body) = read_answer(s);
    (head, String::from_utf8(body).unwrap())
}

/// The head of a multipart upload of `length` body bytes, boundary `XX`.
fn upload_head(id: &str, length: usize) -> String {
    format!(
        "POST /upload?X-Progress-ID={id} HTTP/1.1\r\nHost: a\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn status_request(id: &str) -> String {
    format!("GET /upload/status?X-Progress-ID={id} HTTP/1.1\r\nHost: a\r\n\r\n")
}

/// A status client's kept connection waits between requests without a
/// thread of its own (it is parked, `src/front/http/park.rs`), and every
/// request it then sends is answered as a thread answers it.
#[test]
fn a_status_connection_waits_without_a_thread_and_is_answered_each_time() {
    let d = Daemon::start("parked", &[]);
    let base = settled_threads(&d);
    let mut s = d.connect();
    for i in 0..60 {
        let (head, body) = if i % 2 == 0 {
            ask(&mut s, &status_request("a"))
        } else {
            ask(
                &mut s,
                "GET /upload/status?X-Progress-ID=a&callback=cb HTTP/1.1\r\nHost: a\r\n\r\n",
            )
        };
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{i}: {head}");
        assert_eq!(header(&head, "Connection"), None, "{i}: {head}");
        if i % 2 == 0 {
            assert_eq!(body, r#"{"state":"starting"}"#, "{i}");
        } else {
            assert_eq!(body, r#"/**/cb({"state":"starting"});"#, "{i}");
        }
        if i == 0 {
            assert_eq!(
                settled_threads(&d),
                base,
                "the connection still holds a thread while it waits"
            );
        }
    }
}

/// After a parked wait, whatever comes next is served: an upload (on a
/// thread again), a head in two pieces, two requests in one write
/// (answered in order), a malformed head (400, closed).
#[test]
fn a_parked_connection_takes_any_request_next() {
    let d = Daemon::start("parked-next", &[]);
    let mut s = d.connect();
    let (head, _) = ask(&mut s, &status_request("p"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let body = multipart("XX", "f.txt", b"hello");
    s.write_all(upload_head("p", body.len()).as_bytes())
        .unwrap();
    s.write_all(&body).unwrap();
    let (head, answer) = read_answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 201 "), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains("f.txt"));
    let (head, done) = ask(&mut s, &status_request("p"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(done.contains(r#""state":"done""#), "{done}");
    // Parked again: a head that arrives in two pieces.
    sleep(Duration::from_millis(100));
    s.write_all(b"GET /upload/status?X-Pro").unwrap();
    sleep(Duration::from_millis(200));
    let (head, again) = ask(&mut s, "gress-ID=p HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(again, done);
    // Parked again: two requests in one write, answered in order.
    sleep(Duration::from_millis(100));
    s.write_all(format!("{}{}", status_request("a"), status_request("p")).as_bytes())
        .unwrap();
    let (_, first) = read_answer(&mut s);
    let (_, second) = read_answer(&mut s);
    assert_eq!(String::from_utf8(first).unwrap(), r#"{"state":"starting"}"#);
    assert_eq!(String::from_utf8(second).unwrap(), done);
    // Parked again: a malformed head is refused, and the connection ends.
    sleep(Duration::from_millis(100));
    s.write_all(
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let reply = read_to_close(&mut s);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert_eq!(answers(&reply), 1, "{reply}");
}

/// An idle timeout of any length the command line takes (here the
/// largest, 2^64 - 1 seconds) leaves parked connections answered: the
/// waiting threads never add it to the clock unchecked.
#[test]
fn a_huge_idle_timeout_leaves_parked_connections_answered() {
    let d = Daemon::start("parked-huge", &["--idle-timeout", "18446744073709551615s"]);
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..3 {
        let (head, body) = ask(&mut s, &status_request("a"));
        assert!(head.starts_with("HTTP/1.1 200 "), "{i}: {head}");
        assert_eq!(body, r#"{"state":"starting"}"#, "{i}");
    }
}

/// Every status request a parked connection is answered is logged, the
/// ones answered while the daemon stops too: the waiting threads hold
/// their lines a moment to write several at once, and must not take
/// them down with the process.
#[test]
fn a_parked_connection_s_answers_are_all_logged_through_a_stop() {
    let d = Daemon::start("parked-log", &[]);
    let mut s = d.connect();
    let asking = std::thread::spawn(move || {
        let mut answered = 0;
        // Until the daemon has gone.
        while s.write_all(status_request("logged").as_bytes()).is_ok() {
            let Some((head, _)) = try_read_answer(&mut s) else {
                break;
            };
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            answered += 1;
        }
        answered
    });
    sleep(Duration::from_millis(500));
    common::terminate(d.pid());
    let answered = asking.join().unwrap();
    // Every line, until stderr closes with the process.
    let mut logged = 0;
    loop {
        match d.log.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.ends_with(" logged") && line.contains(" 200 ") => logged += 1,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the daemon did not end: {e}"),
        }
    }
    assert!(answered > 100, "{answered}");
    assert!(logged >= answered, "{answered} answered, {logged} logged");
}

/// A parked connection's log line is written while the connection stays
/// open and quiet: the waiting thread holds it only for a moment (50 ms),
/// not until more lines come or the daemon stops.
#[test]
fn a_parked_connection_s_log_line_is_written_while_it_waits() {
    let d = Daemon::start("parked-log-wait", &[]);
    let mut s = d.connect();
    // The first answer comes from the connection's thread; the second,
    // once the connection is parked, from a waiting thread.
    for id in ["first", "held"] {
        let (head, _) = ask(&mut s, &status_request(id));
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match d.log.recv_timeout(left) {
            Ok(line) if line.ends_with(" held") => break,
            Ok(_) => {}
            Err(e) => panic!("no log line for the parked request within 5 s: {e}"),
        }
    }
    // The connection is still open and answered.
    let (head, _) = ask(&mut s, &status_request("again"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}

/// A parked connection stays evictable: at the cap, the one idle longest
/// goes, parked or not.
#[test]
fn a_parked_connection_is_evicted_at_the_cap() {
    let d = Daemon::start("parked-cap", &["--max-connections", "2"]);
    let mut oldest = d.connect();
    let (head, _) = ask(&mut oldest, &status_request("a"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    sleep(Duration::from_millis(100));
    let mut newer = d.connect();
    let (head, _) = ask(&mut newer, &status_request("a"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    sleep(Duration::from_millis(100));
    let mut third = d.connect();
    let (head, _) = ask(&mut third, &status_request("a"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        closed(&mut oldest, Duration::from_secs(5)),
        "the oldest parked one goes"
    );
    let (head, _) = ask(&mut newer, &status_request("a"));
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "the newer one stays: {head}"
    );
}

/// A body trickled one byte at a time: every read gets a byte, so the
/// socket's timeout never fires; the minimum-progress rule (less than
/// 1 KiB in an idle-timeout window) does: 408, state `error`, no file.
#[test]
fn a_trickled_body_is_cut_off() {
    let d = Daemon::start("trickle-body", &["--idle-timeout", "1s"]);
    let mut s = d.connect();
    s.write_all(
        b"POST /upload?X-Progress-ID=trickle HTTP/1.1\r\nHost: a\r\n\
          Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n\
          --XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t\"\r\n\r\n",
    )
    .unwrap();
    let reply = trickle(&mut s, b'y', Duration::from_millis(100));
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply}"
    );
    let mut s = d.connect();
    s.write_all(b"GET /upload/status?X-Progress-ID=trickle HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (_, status) = read_answer(&mut s);
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["state"], "error", "{status}");
    assert_eq!(status["status"], 408, "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("idle timeout"),
        "{status}"
    );
    assert_eq!(entries(&d.pool.join("trickle")), ["lock", "status.json"]);
}

/// A closing connection reads off what the client still sends for a
/// moment (2 s), not for the idle timeout: a client that keeps a refused
/// upload's connection open and silent does not hold a thread for long.
#[test]
fn lingering_is_bounded_by_its_own_time() {
    let d = Daemon::start("linger", &["--idle-timeout", "60s", "--max-uploads", "1"]);
    let warm = d.exchange(
        format!("GET {STATUS} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(warm.starts_with("HTTP/1.1 200 "), "{warm}");
    sleep(Duration::from_millis(300));
    let before = d.threads();
    let (s, _) = refused_as_text(&d, "linger", 100_000);
    // The client stays, silent; its connection's thread must end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.threads() > before && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    let waited = deadline - Duration::from_secs(10);
    assert!(
        d.threads() <= before,
        "{} threads, {before} before",
        d.threads()
    );
    assert!(
        waited.elapsed() < Duration::from_secs(5),
        "{:?}",
        waited.elapsed()
    );
    drop(s);
}
