//! The core's behaviour, in memory: an `App` over a pool in a temporary
//! directory, asked as a front end asks it (route, handle, render), with
//! the bodies a browser or `curl` would send. What needs a real socket
//! (framing, `Expect`, the log) stays in `scripts/test-api.sh`.

mod common;

use std::fs;
use std::process::Command;

use common::{Core, FORM, form, json, one_file, unescape_html};
use fileupload::app::intercept::Limits;
use fileupload::app::render::render;
use fileupload::app::{Answer, App, Route, route};
use fileupload::model::http::Request;
use fileupload::model::identifier::{Signer, to_hex};
use fileupload::{Error, Pool};
use serde_json::{Value, json};

/// What a browser posting a plain form sends.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

fn sha256(data: &[u8]) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Bytes that no compression or text handling would leave alone.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fileupload")
}

#[test]
fn unknown_identifier_is_starting() {
    let core = Core::new("unknown");
    let r = core.get("/upload/status?X-Progress-ID=fresh-1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"state":"starting"}"#);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
}

#[test]
fn an_upload_is_described_stored_and_reported() {
    let core = Core::new("upload");
    let b = noise(100_000);
    let body = form(&[
        ("first", Some("a.txt"), Some("text/plain"), b"hello\n"),
        ("second", Some("b.bin"), None, &b),
        ("note", None, None, b"hi"),
        ("note", None, None, b"again"),
        ("other", None, None, b"x y"),
    ]);
    let r = core.post("/upload?X-Progress-ID=two-files", &body);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let d = json(&r);
    assert_eq!(d["state"], "done");
    assert_eq!(d["identifier"], "two-files");
    assert_eq!(d["files"].as_array().unwrap().len(), 2);
    assert_eq!(d["filename"], "a.txt");
    assert_eq!(d["content-type"], "text/plain");
    assert_eq!(d["files"][0]["length"], 6);
    assert_eq!(d["files"][0]["sha256"], sha256(b"hello\n"));
    assert_eq!(d["files"][1]["field"], "second");
    assert_eq!(d["files"][1]["content-type"], "application/octet-stream");
    assert_eq!(d["files"][1]["sha256"], sha256(&b));
    assert_eq!(
        d["fields"],
        json!({"note": ["hi", "again"], "other": ["x y"]})
    );
    assert_eq!(d["size"], body.len());
    assert_eq!(d["received"], d["size"]);
    assert!(
        d["files"][0].get("path").is_none(),
        "a path went to a browser"
    );
    assert_eq!(fs::read(core.pool().join("two-files/1")).unwrap(), b);

    // The status after the upload is the description, by every way of
    // asking: the status flag, the status path, the identifier as a header.
    assert_eq!(json(&core.get("/upload?X-Progress-ID=two-files&status")), d);
    assert_eq!(core.status("two-files"), d);
    let r = core.ask(
        "GET",
        "/upload/status",
        &[("X-Progress-ID", "two-files")],
        b"",
        None,
    );
    assert_eq!((r.status, json(&r)), (200, d.clone()));

    // …and the command line reads the same pool the same way.
    let out = Command::new(bin())
        .arg("--directory")
        .arg(core.pool())
        .args(["status", "two-files"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), d);
}

#[test]
fn jsonp_and_refused_callbacks() {
    let core = Core::new("jsonp");
    let r = core.get("/upload?X-Progress-ID=fresh-2&status&callback=jQuery_1.cb");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"/**/jQuery_1.cb({"state":"starting"});"#);
    assert_eq!(r.header("Content-Type"), Some("application/javascript"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    let too_long = "a".repeat(65);
    for cb in ["alert(1)", "1abc", "%3Cscript%3E", &too_long, "a-b"] {
        let r = core.get(&format!(
            "/upload/status?X-Progress-ID=fresh-2&callback={cb}"
        ));
        assert_eq!(r.status, 400, "callback {cb}");
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{cb}");
        let e = json(&r);
        assert_eq!(e["state"], "error", "callback {cb} echoed");
        assert_eq!(e["error"], "invalid callback name");
    }
    // An error after the callback was accepted is a JSONP error.
    let r = core.get("/upload/status?X-Progress-ID=a.b&callback=cb");
    assert_eq!(r.status, 400);
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        body.starts_with("/**/cb({\"error\":")
            && body.ends_with(",\"state\":\"error\",\"status\":400});"),
        "{body}"
    );
}

#[test]
fn invalid_identifiers_touch_nothing() {
    let core = Core::new("invalid");
    let before = core.pool_entries();
    let too_long = "a".repeat(65);
    for bad in [
        "..", "../x", "..%2Fx", "%2e%2e", "a%00b", "a.b", "a%20b", &too_long, "abc:0123", "",
    ] {
        for url in [
            format!("/upload/status?X-Progress-ID={bad}"),
            format!("/upload?X-Progress-ID={bad}&clear"),
        ] {
            let r = core.get(&url);
            assert_eq!(r.status, 400, "{url}");
            assert_eq!(json(&r)["state"], "error", "{url}");
        }
        let r = core.post(
            &format!("/upload?X-Progress-ID={bad}"),
            &one_file("a.txt", b"x"),
        );
        assert_eq!(r.status, 400, "upload with [{bad}]");
        assert_eq!(json(&r)["state"], "error", "upload with [{bad}]");
    }
    assert_eq!(core.pool_entries(), before);
    assert!(
        !core.root.path().join("x").exists(),
        "a traversal created a file"
    );
}

#[test]
fn an_upload_without_identifier_gets_one() {
    let core = Core::new("minted");
    let d = json(&core.post("/upload", &one_file("a.txt", b"hello\n")));
    let id = d["identifier"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "minted identifier [{id}]"
    );
    assert_eq!(core.status(&id)["state"], "done");
}

#[test]
fn clear_every_way() {
    let core = Core::new("clear");
    let form = one_file("a.txt", b"hello\n");
    for id in ["one", "two"] {
        assert_eq!(
            core.post(&format!("/upload?X-Progress-ID={id}"), &form)
                .status,
            201
        );
    }
    let r = core.get("/upload?X-Progress-ID=one&clear");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &br#"{"success":true}"#[..])
    );
    assert_eq!(core.status("one"), json!({"state": "starting"}));
    assert!(
        !core.pool().join("one").exists(),
        "bucket still there after clear"
    );
    let r = core.ask(
        "POST",
        "/upload/clear?X-Progress-ID=never-used",
        &[],
        b"",
        Some(0),
    );
    assert_eq!(r.body, br#"{"success":true}"#);
    let r = core.ask("DELETE", "/upload?X-Progress-ID=two", &[], b"", None);
    assert_eq!(r.body, br#"{"success":true}"#);
    assert!(!core.pool().join("two").exists(), "bucket two still there");
    let r = core.get("/upload?X-Progress-ID=two&clear&callback=cb");
    assert_eq!(r.body, br#"/**/cb({"success":true});"#);
}

#[test]
fn over_the_size_limit_is_refused_and_recorded() {
    let core = Core::new("size");
    let big = one_file("big.bin", &noise(2_000_000));
    // By Content-Length, before a byte is read: the body here could not
    // even be read.
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=too-big",
        &[("Content-Type", FORM)],
        b"",
        Some(big.len() as u64),
    );
    assert_eq!(r.status, 413);
    assert_eq!(json(&r)["status"], 413);
    let s = core.status("too-big");
    assert_eq!(
        (s["state"].as_str(), s["status"].as_u64()),
        (Some("error"), Some(413))
    );
    // By the bytes received, for a body of no declared length (chunked).
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=too-big-chunked",
        &[("Content-Type", FORM)],
        &big,
        None,
    );
    assert_eq!(r.status, 413);
    let s = core.status("too-big-chunked");
    assert_eq!(s["status"], 413);
    assert_eq!(s["size"], Value::Null);
    assert!(core.stored_files("too-big-chunked").is_empty());
    // A body of no declared length within the limit is fine.
    let b = noise(100_000);
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=chunked-ok",
        &[("Content-Type", FORM)],
        &one_file("b.bin", &b),
        None,
    );
    assert_eq!(r.status, 201);
    assert_eq!(json(&r)["files"][0]["sha256"], sha256(&b));
}

#[test]
fn too_many_files() {
    let core = Core::new("many");
    let a: &[u8] = b"hello\n";
    let body = form(&[
        ("a", Some("a.txt"), None, a),
        ("b", Some("a.txt"), None, a),
        ("c", Some("a.txt"), None, a),
        ("d", Some("a.txt"), None, a),
    ]);
    let r = core.post("/upload?X-Progress-ID=many", &body);
    assert_eq!(r.status, 413);
    assert_eq!(json(&r)["error"], "too many files: at most 3 per upload");
    assert!(
        core.stored_files("many").is_empty(),
        "files left after too many files"
    );
    assert_eq!(core.status("many")["status"], 413);
}

#[test]
fn wrong_media_type_method_and_path() {
    let core = Core::new("routes");
    let r = core.ask(
        "POST",
        "/upload",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"x=1",
        Some(3),
    );
    assert_eq!(r.status, 415);
    assert_eq!(json(&r)["status"], 415);
    for (method, url, allow) in [
        ("PUT", "/upload", "POST, DELETE"),
        ("POST", "/upload/status", "GET, HEAD"),
        ("PUT", "/upload/clear", "GET, POST, DELETE"),
    ] {
        let r = core.ask(method, url, &[], b"", Some(0));
        assert_eq!(r.status, 405, "{method} {url}");
        assert_eq!(r.header("Allow"), Some(allow), "{method} {url}");
        assert_eq!(json(&r)["error"], "method not allowed");
    }
    assert_eq!(core.get("/elsewhere").status, 404);
    assert_eq!(core.get("/elsewhere").header("Allow"), None);
    let form = one_file("a.txt", b"hello\n");
    assert_eq!(core.post("/myupload", &form).status, 404);
    let r = core.post("/some/prefix/upload?X-Progress-ID=prefixed", &form);
    assert_eq!(r.status, 201);
    assert_eq!(core.post("/upload/?X-Progress-ID=slash", &form).status, 201);
}

#[test]
fn every_slot_taken_is_503_with_retry_after() {
    let core = Core::with("busy", None, 0);
    let r = core.post("/upload?X-Progress-ID=busy", &one_file("a.txt", b"x"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("5"));
    assert_eq!(json(&r)["status"], 503);
}

#[test]
fn file_names_are_cleaned() {
    let core = Core::new("names");
    // As browsers send them: `"` as %22, CR and LF as %0D and %0A, the
    // rest as it is.
    for (sent, kept) in [
        ("a;b.txt", "a;b.txt"),
        ("quote%22d.txt", "quote\"d.txt"),
        ("it's.txt", "it's.txt"),
        ("résumé 日本.txt", "résumé 日本.txt"),
        (r"C:\Users\me\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("a%0Db%0Ac%22\t.txt", "abc\".txt"),
    ] {
        let r = core.post("/upload?X-Progress-ID=names", &one_file(sent, b"hello\n"));
        assert_eq!(r.status, 201, "{sent}");
        assert_eq!(json(&r)["files"][0]["filename"], kept, "{sent}");
    }
    let r = core.post(
        "/upload?X-Progress-ID=crlf",
        &form(&[("f\t", Some("a.txt"), None, b"z")]),
    );
    assert_eq!(
        json(&r)["files"][0]["field"],
        "f",
        "control characters in the field"
    );
    // Raw CR or LF make the part's header malformed; none comes back.
    let raw = b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\rb\nc.txt\"\r\n\r\nz\r\n--XX--\r\n";
    let r = core.post("/upload?X-Progress-ID=crlf-raw", raw);
    assert_eq!(r.status, 400);
    assert!(!r.body.contains(&b'\r'), "CR in the reply");
}

/// The value of `attribute="…"` in an HTML text.
fn attribute<'a>(html: &'a str, attribute: &str) -> &'a str {
    let start = html.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    let len = html[start..].find('"').unwrap();
    &html[start..start + len]
}

#[test]
fn the_iframe_reply_is_escaped_html() {
    let core = Core::new("html");
    let name = "<img src=x onerror=alert(1)>.txt";
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=html-1",
        &[("Content-Type", FORM), ("Accept", BROWSER_ACCEPT)],
        &one_file(name, b"hello\n"),
        None,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body).unwrap();
    assert_eq!(attribute(&html, "data-upload-identifier"), "html-1");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{html}"
    );
    assert!(
        !html.contains("<img"),
        "unescaped HTML in the reply: {html}"
    );
    let info: Value =
        serde_json::from_str(&unescape_html(attribute(&html, "data-upload-info"))).unwrap();
    assert_eq!(info["files"][0]["filename"], name);
    assert_eq!(info, core.status("html-1"));
    // `curl` and `fetch` get JSON.
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=html-2",
        &[("Content-Type", FORM), ("Accept", "*/*")],
        &one_file("a.txt", b"x"),
        None,
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
}

#[test]
fn malformed_bodies_fail_cleanly_and_are_recorded() {
    let core = Core::new("broken");
    let cut = b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t\"\r\n\r\nno end";
    let r = core.post("/upload?X-Progress-ID=broken", cut);
    assert_eq!(r.status, 400);
    assert_eq!(core.status("broken")["state"], "error");
    let r = core.ask(
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data")],
        b"x",
        Some(1),
    );
    assert_eq!(r.status, 400);
    assert_eq!(json(&r)["error"], "multipart/form-data without a boundary");
    // A body shorter than its Content-Length did not arrive whole.
    let body = one_file("a.txt", b"x");
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=short",
        &[("Content-Type", FORM)],
        &body,
        Some(body.len() as u64 + 10),
    );
    assert_eq!(r.status, 400);
    assert_eq!(core.status("short")["state"], "error");
}

#[test]
fn a_finished_upload_is_replaced() {
    let core = Core::new("replace");
    let first = form(&[
        ("f", Some("b.bin"), None, &noise(1000)),
        ("g", Some("c.bin"), None, &noise(10)),
    ]);
    assert_eq!(core.post("/upload?X-Progress-ID=again", &first).status, 201);
    let r = core.post("/upload?X-Progress-ID=again", &one_file("a.txt", b"hello"));
    assert_eq!(r.status, 201);
    assert_eq!(json(&r)["files"][0]["length"], 5);
    assert_eq!(fs::read(core.pool().join("again/0")).unwrap(), b"hello");
    assert_eq!(core.stored_files("again"), ["0"], "an old file was left");
}

#[test]
fn a_refusal_keeps_a_finished_upload() {
    let core = Core::with("keep", Some(100), 4);
    assert_eq!(
        core.post("/upload?X-Progress-ID=kept", &one_file("a.txt", b"x"))
            .status,
        201
    );
    let r = core.ask(
        "POST",
        "/upload?X-Progress-ID=kept",
        &[("Content-Type", FORM)],
        b"",
        Some(1000),
    );
    assert_eq!(r.status, 413);
    assert_eq!(core.status("kept")["state"], "done");
}

#[test]
fn errors_render_byte_for_byte() {
    let core = Core::new("bytes");
    let r = core.get("/elsewhere");
    assert_eq!(
        r.body,
        br#"{"error":"not found","state":"error","status":404}"#
    );
    let e = Error::bad_request("x");
    assert_eq!(
        serde_json::to_vec(&e.to_json()).unwrap(),
        br#"{"error":"x","state":"error","status":400}"#
    );
}

#[test]
fn demo_pages_only_when_asked() {
    let root = std::env::temp_dir().join(format!("fileupload-core-demo-{}", std::process::id()));
    let pool = Pool::open(root.join("pool"), Signer::new(None)).unwrap();
    let app = App::new(pool, Limits::default(), true, 1).with_demo(true);
    let ask = |app: &App, method: &str, path: &str| {
        let mut body: &[u8] = b"";
        render(app.handle(
            route(method, path, ""),
            Request {
                method: method.into(),
                path: path.into(),
                query: String::new(),
                headers: Vec::new(),
                content_length: None,
                body: &mut body,
                interrupt: None,
            },
        ))
    };
    let r = ask(&app, "GET", "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("Content-Security-Policy")
            .is_some_and(|p| p.contains("default-src 'none'"))
    );
    assert_eq!(ask(&app, "POST", "/").status, 404);
    let plain = App::new(
        Pool::open(root.join("pool"), Signer::new(None)).unwrap(),
        Limits::default(),
        true,
        1,
    );
    assert_eq!(ask(&plain, "GET", "/").status, 404);
    let _ = fs::remove_dir_all(&root);
}

/// What the log line and a front end read: the route decided once, the
/// identifier as shown, the bytes received, and the answer before it is
/// rendered.
#[test]
fn the_outcome_carries_what_the_log_reads() {
    let core = Core::new("outcome");
    let body = one_file("a.txt", b"hello\n");
    let mut reader = body.as_slice();
    let outcome = core.app.handle(
        Route::Upload,
        Request {
            method: "POST".into(),
            path: "/upload".into(),
            query: "X-Progress-ID=logged".into(),
            headers: vec![("Content-Type".into(), FORM.into())],
            content_length: Some(body.len() as u64),
            body: &mut reader,
            interrupt: None,
        },
    );
    assert_eq!(outcome.route, Some(Route::Upload));
    assert_eq!(outcome.identifier.as_deref(), Some("logged"));
    assert_eq!(outcome.received, body.len() as u64);
    assert_eq!(outcome.status(), 201);
    assert!(
        matches!(&outcome.answer, Ok(Answer::Uploaded { html: false, description }) if description.files().len() == 1),
        "{:?}",
        outcome.answer
    );
    let mut empty: &[u8] = b"";
    let outcome = core.app.handle(
        Route::Status,
        Request {
            method: "GET".into(),
            path: "/upload/status".into(),
            query: "X-Progress-ID=..&callback=cb".into(),
            headers: Vec::new(),
            content_length: None,
            body: &mut empty,
            interrupt: None,
        },
    );
    assert_eq!(outcome.identifier.as_deref(), Some(".."));
    assert_eq!(outcome.callback.as_deref(), Some("cb"));
    assert_eq!(outcome.received, 0);
    assert_eq!(outcome.status(), 400);
    assert_eq!(
        outcome.answer.as_ref().map_err(Error::kind).err(),
        Some(fileupload::model::error::ErrorKind::BadRequest)
    );
}

/// A request body that gives its first bytes, then waits for the rest.
struct Gated {
    now: std::io::Cursor<Vec<u8>>,
    rest: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl std::io::Read for Gated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.now.read(out)?;
            if n > 0 {
                return Ok(n);
            }
            match self.rest.recv() {
                Ok(more) => self.now = std::io::Cursor::new(more),
                Err(_) => return Ok(0),
            }
        }
    }
}

#[test]
fn a_running_upload_is_reported_from_the_writers_memory() {
    let core = Core::with("live", None, 4);
    let data = noise(300_000);
    let body = form(&[("f", Some("a.bin"), None, &data)]);
    let (first, rest) = body.split_at(100_000);
    let (send, rest_rx) = std::sync::mpsc::channel();
    let id = "live-1";
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut gated = Gated {
                now: std::io::Cursor::new(first.to_vec()),
                rest: rest_rx,
            };
            let outcome = core.app.handle(
                Route::Upload,
                Request {
                    method: "POST".into(),
                    path: "/upload".into(),
                    query: format!("X-Progress-ID={id}"),
                    headers: vec![("Content-Type".into(), FORM.into())],
                    content_length: Some(body.len() as u64),
                    body: &mut gated,
                    interrupt: None,
                },
            );
            render(outcome)
        });
        // Until the writer has read what it was given. The pool alone
        // would say so only at its next publish, which a writer blocked on
        // its client never reaches: the guard is against a hang, not a
        // measure of speed.
        let guard = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while core.status(id)["received"] != 100_000 {
            assert!(
                std::time::Instant::now() < guard,
                "the bytes read are not reported: {}",
                core.status(id)
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // With the published document moved away, the pool alone would
        // not know the upload; this process's writer still does.
        let document = core.pool().join(id).join("status.json");
        let aside = core.pool().join(id).join("status.aside");
        fs::rename(&document, &aside).unwrap();
        let seen = core.status(id);
        assert_eq!(seen["state"], "uploading", "{seen}");
        assert_eq!(seen["received"], 100_000, "{seen}");
        assert_eq!(seen["size"], body.len(), "{seen}");
        // Another process on the same pool reads the disk.
        let other = Pool::open(core.pool(), Signer::new(None)).unwrap();
        let id_parsed = other.verify_identifier(id).unwrap();
        let from_disk = other.access_upload_bucket(&id_parsed).status().unwrap();
        assert_eq!(
            from_disk.state,
            fileupload::model::status::State::Starting,
            "no document on disk: {from_disk:?}"
        );
        fs::rename(&aside, &document).unwrap();
        send.send(rest.to_vec()).unwrap();
        drop(send);
        let r = writer.join().unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    });
    let done = core.status(id);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["files"][0]["sha256"], sha256(&data));
}
