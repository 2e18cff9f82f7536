//! Operating a fleet, against the built daemon: the host name in every log
//! line, `/metrics` (off unless asked for) and `/healthz`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Daemon, TempDir, entries, header, multipart, parse_metrics, read_to_close};
use serde_json::Value;

/// `METHOD path` on a new connection to the daemon at `addr`: the
/// status, the head, the body.
fn ask_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&request).unwrap();
    let answer = read_to_close(&mut s);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.as_bytes().to_vec())
}

fn ask(d: &Daemon, method: &str, path: &str, extra: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    ask_at(d.addr, method, path, extra, body)
}

fn get(d: &Daemon, path: &str) -> (u16, String, Vec<u8>) {
    ask(d, "GET", path, "", b"")
}

/// Posts one file as a multipart form.
fn upload(d: &Daemon, id: &str, data: &[u8]) -> u16 {
    let body = multipart("B", "f.bin", data);
    let path = format!("/upload?X-Progress-ID={id}");
    ask(
        d,
        "POST",
        &path,
        "Content-Type: multipart/form-data; boundary=B\r\n",
        &body,
    )
    .0
}

/// A scrape of `/metrics`, read strictly (see [`parse_metrics`]).
fn scrape(d: &Daemon) -> BTreeMap<String, f64> {
    let (status, head, body) = get(d, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(std::str::from_utf8(&body).unwrap())
}

/// How much each series moved from `before` to `after`, for those that did.
fn moved(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the series changed"
    );
    after
        .iter()
        .filter(|(series, value)| before[*series] != **value)
        .map(|(series, value)| (series.clone(), value - before[series]))
        .collect()
}

/// Asserts that `series` moved by `by`.
fn expect_moved(moved: &BTreeMap<String, f64>, series: &str, by: f64) {
    assert_eq!(moved.get(series).copied(), Some(by), "{series}: {moved:#?}");
}

/// The failed uploads of a scrape (or of what moved), every reason.
fn failed(samples: &BTreeMap<String, f64>) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| s.starts_with("fileupload_uploads_failed_total{"))
        .map(|(_, v)| v)
        .sum()
}

/// The pool's gauges of a scrape.
fn pool_gauges(samples: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|(series, _)| series.starts_with("fileupload_pool_"))
        .map(|(s, v)| (s.clone(), *v))
        .collect()
}

/// The log line of the next request whose path is `path`, split in fields.
fn log_line(d: &Daemon, path: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = d.log.recv_timeout(left).expect("a log line");
        let fields: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if fields.get(3).map(String::as_str) == Some(path) {
            return fields;
        }
    }
}

/// `time host method path status bytes duration identifier`: the host is
/// the second field, given or the kernel's.
#[test]
fn log_lines_carry_the_host_name() {
    let d = Daemon::start("host-given", &["--host-name", "web-7"]);
    d.exchange(
        b"GET /upload/status?X-Progress-ID=h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let fields = log_line(&d, "/upload/status");
    assert_eq!(fields.len(), 8, "{fields:?}");
    assert_eq!(
        (&*fields[1], &*fields[2], &*fields[4], &*fields[7]),
        ("web-7", "GET", "200", "h1"),
        "{fields:?}"
    );

    let d = Daemon::start("host-kernel", &[]);
    d.exchange(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let fields = log_line(&d, "/nowhere");
    assert_eq!(fields[1], kernel.trim(), "{fields:?}");
    assert_eq!(fields[4], "404", "{fields:?}");
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let d = Daemon::start("metrics-off", &[]);
    let (status, _, body) = get(&d, "/metrics");
    assert_eq!(status, 404);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["status"], 404);
    // Known paths with a method they do not take.
    let d = Daemon::start("metrics-on-405", &["--metrics"]);
    let (status, head, _) = ask(&d, "POST", "/metrics", "", b"");
    assert_eq!((status, header(&head, "Allow")), (405, Some("GET, HEAD")));
    let (status, head, body) = ask(&d, "HEAD", "/metrics", "", b"");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty());
}

/// Every counter moves by exactly what was done between two scrapes, and
/// no other series moves, but the timing of those requests.
#[test]
fn counters_move_by_what_was_done() {
    let d = Daemon::start("metrics-counters", &["--metrics", "--max-size", "1K"]);
    let before = scrape(&d);
    assert_eq!(before["fileupload_uploads_started_total"], 0.0);
    assert_eq!(before["fileupload_uploads_in_progress"], 0.0);

    let data = b"twelve bytes";
    let form = multipart("B", "f.bin", data);
    assert_eq!(upload(&d, "m1", data), 201);
    // Over --max-size by its Content-Length: refused before the body is read.
    assert_eq!(upload(&d, "m2", &[b'x'; 2000]), 413);
    // A body that is no form: refused after the core read it.
    let (status, _, _) = ask(
        &d,
        "POST",
        "/upload?X-Progress-ID=m3",
        "Content-Type: text/plain\r\n",
        b"abc",
    );
    assert_eq!(status, 415);
    for _ in 0..3 {
        assert_eq!(get(&d, "/upload/status?X-Progress-ID=m1").0, 200);
    }
    assert_eq!(get(&d, "/nowhere").0, 404);
    let after = scrape(&d);

    let moved = moved(&before, &after);
    let expect = |series: &str, by: f64| expect_moved(&moved, series, by);
    expect("fileupload_uploads_started_total", 3.0);
    expect("fileupload_uploads_done_total", 1.0);
    expect(
        r#"fileupload_uploads_failed_total{reason="too_large"}"#,
        1.0,
    );
    expect(
        r#"fileupload_uploads_failed_total{reason="unsupported_media_type"}"#,
        1.0,
    );
    expect("fileupload_status_requests_total", 3.0);
    // The form read whole; the 415's body is read by the connection, not
    // the core, and the 413's never.
    let received = moved["fileupload_received_bytes_total"];
    assert_eq!(received, form.len() as f64, "{moved:#?}");
    let count =
        |route: &str| format!(r#"fileupload_request_duration_seconds_count{{route="{route}"}}"#);
    expect(&count("upload"), 3.0);
    expect(&count("status"), 3.0);
    expect(&count("other"), 1.0);
    // The first scrape, counted once it was answered.
    expect(&count("metrics"), 1.0);
    // The pool: one upload done with its 12 bytes, the 413 recorded for
    // its identifier; the 415 had no form to record anything for.
    expect(r#"fileupload_pool_buckets{state="done"}"#, 1.0);
    expect(r#"fileupload_pool_buckets{state="error"}"#, 1.0);
    expect("fileupload_pool_stored_bytes", data.len() as f64);
    // Nothing else moved but the timings of the routes asked.
    for series in moved.keys() {
        let timing = series.starts_with("fileupload_request_duration_seconds_")
            && ["upload", "status", "other", "metrics"]
                .iter()
                .any(|r| series.contains(&format!(r#"route="{r}""#)));
        let expected = timing
            || series.starts_with("fileupload_uploads_")
            || series.starts_with("fileupload_pool_")
            || series == "fileupload_status_requests_total"
            || series == "fileupload_received_bytes_total";
        assert!(expected, "{series} moved: {moved:#?}");
    }
    for kind in ["conflict", "internal", "timeout", "bad_request"] {
        let series = format!(r#"fileupload_uploads_failed_total{{reason="{kind}"}}"#);
        assert_eq!(after[&series], 0.0, "{series}");
    }
    assert_eq!(after["fileupload_uploads_in_progress"], 0.0);
    // Every upload started ended once: done or failed.
    assert_eq!(
        after["fileupload_uploads_started_total"],
        after["fileupload_uploads_done_total"] + failed(&after)
    );
}

/// A tus request that sends bytes is an upload for the counters: each
/// PATCH, and a creation with a body; done when its bytes are stored,
/// failed by the kind of its error. A creation without a body and HEAD
/// are not.
#[test]
fn tus_requests_that_send_bytes_count_as_uploads() {
    let d = Daemon::start("metrics-tus", &["--metrics"]);
    let before = scrape(&d);
    let tus = "Tus-Resumable: 1.0.0\r\n";
    let stream = "Content-Type: application/offset+octet-stream\r\n";
    let (status, head, _) = ask(
        &d,
        "POST",
        "/files",
        &format!("{tus}Upload-Length: 10\r\n"),
        b"",
    );
    assert_eq!(status, 201, "{head}");
    let path = format!("/{}", header(&head, "Location").unwrap());
    let patch = |offset: u64, bytes: &[u8]| {
        let extra = format!("{tus}{stream}Upload-Offset: {offset}\r\n");
        ask(&d, "PATCH", &path, &extra, bytes).0
    };
    assert_eq!(patch(0, b"0123"), 204);
    // At the wrong offset: refused before the body is read.
    assert_eq!(patch(0, b"x"), 409);
    assert_eq!(ask(&d, "HEAD", &path, tus, b"").0, 200);
    assert_eq!(patch(4, b"456789"), 204);
    let extra = format!("{tus}{stream}Upload-Length: 3\r\n");
    assert_eq!(ask(&d, "POST", "/files", &extra, b"abc").0, 201);
    let after = scrape(&d);

    let moved = moved(&before, &after);
    let expect = |series: &str, by: f64| expect_moved(&moved, series, by);
    expect("fileupload_uploads_started_total", 4.0);
    expect("fileupload_uploads_done_total", 3.0);
    expect(r#"fileupload_uploads_failed_total{reason="conflict"}"#, 1.0);
    expect("fileupload_received_bytes_total", 13.0);
    expect(
        r#"fileupload_request_duration_seconds_count{route="tus"}"#,
        6.0,
    );
    assert_eq!(after["fileupload_uploads_in_progress"], 0.0);
    assert_eq!(failed(&moved), 1.0, "{moved:#?}");
}

/// Two daemons on one pool report the same pool totals, and each its own
/// counters.
#[test]
fn pool_gauges_are_the_same_on_every_host() {
    let dir = TempDir::new("metrics-shared");
    let pool = dir.pool();
    let a = Daemon::start_in("metrics-a", &pool, &["--metrics", "--max-size", "1K"]);
    let b = Daemon::start_in("metrics-b", &pool, &["--metrics", "--max-size", "1K"]);
    assert_eq!(upload(&a, "s1", b"from a"), 201);
    assert_eq!(upload(&b, "s2", b"from b, longer"), 201);
    assert_eq!(upload(&b, "s3", &[b'x'; 2000]), 413);
    let (on_a, on_b) = (scrape(&a), scrape(&b));
    assert_eq!(pool_gauges(&on_a), pool_gauges(&on_b));
    assert_eq!(on_a[r#"fileupload_pool_buckets{state="done"}"#], 2.0);
    assert_eq!(on_a[r#"fileupload_pool_buckets{state="error"}"#], 1.0);
    assert_eq!(on_a["fileupload_pool_stored_bytes"], 20.0);
    assert_eq!(on_a["fileupload_uploads_started_total"], 1.0);
    assert_eq!(on_b["fileupload_uploads_started_total"], 2.0);
}

#[test]
fn healthz_follows_the_pool() {
    // On by default: no option needed.
    let d = Daemon::start("healthz", &[]);
    let (status, head, body) = get(&d, "/healthz");
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, br#"{"healthy":true}"#);
    // The probe leaves nothing behind.
    assert_eq!(entries(&d.pool), Vec::<String>::new());

    // The pool directory taken away (chmod would not stop root): 503 with
    // the reason, and uploads fail too.
    std::fs::remove_dir_all(&d.pool).unwrap();
    let (status, head, body) = get(&d, "/healthz");
    assert_eq!(status, 503, "{head}");
    assert_eq!(header(&head, "Retry-After"), Some("5"));
    let error: Value = serde_json::from_slice(&body).unwrap();
    let reason = error["error"].as_str().unwrap();
    assert!(
        reason.starts_with("unhealthy: ") && reason.contains("health probe"),
        "{reason}"
    );
    assert_ne!(upload(&d, "h1", b"x"), 201);

    // Back: healthy again.
    std::fs::create_dir(&d.pool).unwrap();
    assert_eq!(get(&d, "/healthz").0, 200);
    assert_eq!(ask(&d, "POST", "/healthz", "", b"").0, 405);
}

/// Hosts probing one pool at once never meet: each probe has its own file.
#[test]
fn probes_of_one_pool_at_once() {
    let dir = TempDir::new("healthz-shared");
    let pool = dir.pool();
    let daemons = [
        Daemon::start_in("healthz-a", &pool, &[]),
        Daemon::start_in("healthz-b", &pool, &[]),
    ];
    std::thread::scope(|scope| {
        for addr in daemons.iter().map(|d| d.addr) {
            for _ in 0..4 {
                scope.spawn(move || {
                    for _ in 0..25 {
                        let (status, head, _) = ask_at(addr, "GET", "/healthz", "", b"");
                        assert_eq!(status, 200, "{head}");
                    }
                });
            }
        }
    });
    assert_eq!(entries(&pool), Vec::<String>::new());
}

/// The CGI program, run as a web server runs it: `/healthz` and
/// `/metrics` by the same translation as every other route.
#[test]
fn cgi_answers_healthz_and_metrics() {
    let dir = TempDir::new("ops-cgi");
    let cgi = |path_info: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fileupload"))
            .arg("cgi")
            .args(args)
            .env("FILEUPLOAD_DIRECTORY", dir.pool())
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "GET")
            .env("SCRIPT_NAME", "/cgi-bin/fileupload")
            .env("PATH_INFO", path_info)
            .env("QUERY_STRING", "")
            .env_remove("FILEUPLOAD_METRICS")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let out = cgi("/healthz", &[]);
    assert!(out.starts_with("Status: 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n{\"healthy\":true}"), "{out}");
    assert!(cgi("/metrics", &[]).starts_with("Status: 404 "));
    let out = cgi("/metrics", &["--metrics"]);
    assert!(out.starts_with("Status: 200 OK\r\n"), "{out}");
    assert!(
        out.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{out}"
    );
    let (_, text) = out.split_once("\r\n\r\n").unwrap();
    let samples = parse_metrics(text);
    assert_eq!(samples["fileupload_uploads_started_total"], 0.0);
    assert_eq!(samples[r#"fileupload_pool_buckets{state="done"}"#], 0.0);
}
