//! Hostile input, a test (or a few) per row of SECURITY.md's table: the
//! core's rules in memory (identifiers, JSONP, HTML escaping, multipart and
//! its limits, links in the pool, file modes, MACs), and what is about the
//! wire over a real `TcpStream` against the built daemon (raw request
//! lines, bodies longer or shorter than their framing, the log, the time a
//! MAC takes to refuse).

mod common;

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Core, Daemon, FORM, TempDir, entries, header, json, one_file, read_answer, read_to_close,
    unescape_html,
};
use fileupload::app::intercept::Limits;
use fileupload::model::identifier::to_hex;
use serde_json::{Value, json};

/// What an upload that failed leaves in its bucket: no file.
const NO_FILE: [&str; 2] = ["lock", "status.json"];

/// The core with the daemon's defaults and `--max-size 64M`, the limits
/// the hostile rows were first tried under.
fn core(name: &str) -> Core {
    let limits = Limits {
        max_size: Some(64 << 20),
        ..Limits::default()
    };
    Core::open(name, limits, None, 32)
}

/// A `POST` of `body` as a multipart form with boundary `XX`, its
/// `Content-Length` given as `length`, with `extra` header lines.
fn upload_request(target: &str, length: usize, body: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {length}\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends `request` on a new connection and reads one answer.
fn ask(d: &Daemon, request: &[u8]) -> (String, Vec<u8>) {
    let mut s = d.connect();
    s.write_all(request).unwrap();
    read_answer(&mut s)
}

/// The status line of an answer's head.
fn status_line(head: &str) -> &str {
    head.lines().next().unwrap_or("")
}

/// The status document of `id`, asked over a connection of its own.
fn status_of(d: &Daemon, id: &str) -> Value {
    let (head, body) = ask(
        d,
        format!("GET /upload/status?X-Progress-ID={id} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    serde_json::from_slice(&body).unwrap()
}

/// A form whose one file part's content is `exact`: what the rows about
/// `Content-Length` send.
const EXACT: &[u8] =
    b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nexact\r\n--XX--\r\n";

#[test]
fn identifiers_in_the_header_are_checked_like_the_query() {
    let core = core("id-header");
    let before = core.pool_entries();
    let long = "a".repeat(65);
    let body = one_file("a.txt", b"hello\n");
    for bad in ["../outside", "..", "/etc", "a\tb", &long, "."] {
        let r = core.ask(
            "GET",
            "/upload/status",
            &[("X-Progress-ID", bad)],
            b"",
            None,
        );
        assert_eq!(r.status, 400, "status with [{bad}]");
        let r = core.ask(
            "POST",
            "/upload",
            &[("X-Progress-ID", bad), ("Content-Type", FORM)],
            &body,
            Some(body.len() as u64),
        );
        assert_eq!(r.status, 400, "upload with [{bad}]");
    }
    assert_eq!(core.pool_entries(), before);
    assert_eq!(
        entries(core.root.path()),
        ["pool"],
        "created beside the pool"
    );
}

/// Traversal and NUL in the request line as no client library would send
/// them, unencoded: refused by the identifier check, nothing created in
/// the pool or beside it.
#[test]
fn raw_traversal_in_the_request_line_is_refused() {
    let d = Daemon::start("raw-traversal", &[]);
    let before = entries(&d.pool);
    for target in [
        "/upload?X-Progress-ID=../../outside/x",
        "/upload?X-Progress-ID=/tmp/x",
        "/upload?X-Progress-ID=a%00",
        "/upload?X-Progress-ID=%2e%2e%2foutside",
        "/upload?X-Progress-ID=%2E%2E",
    ] {
        let body = b"hello\n";
        let (head, _) = ask(&d, &upload_request(target, body.len(), body, &[]));
        assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request", "{target}");
    }
    let (head, _) = ask(
        &d,
        b"GET /upload/status?X-Progress-ID=a\0b HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request", "NUL");
    assert_eq!(entries(&d.pool), before);
    assert_eq!(entries(d.pool.parent().unwrap()), ["pool"]);
}

#[test]
fn refused_callbacks_are_plain_json_and_add_no_header() {
    let core = core("callbacks");
    let long = "a".repeat(65);
    for cb in [
        "cb%0D%0AX-Injected:%201",
        "cb%0AX",
        "a.b(1)//",
        "cb;alert(1)",
        "%EF%BD%83b",
        "cb%00",
        "$x%22",
        &long,
        "/**/cb",
        "%3Cscript%3E",
    ] {
        let r = core.get(&format!("/upload/status?X-Progress-ID=jsonp&callback={cb}"));
        assert_eq!(json(&r)["status"], 400, "callback [{cb}]");
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{cb}");
        for (name, value) in &r.headers {
            assert!(
                !format!("{name}: {}", value.as_str())
                    .to_ascii_lowercase()
                    .contains("x-injected"),
                "callback [{cb}] injected a header"
            );
        }
    }
    let r = core.get("/upload/status?X-Progress-ID=jsonp&callback=$jQ._1");
    assert_eq!(r.body, br#"/**/$jQ._1({"state":"starting"});"#);
}

/// The start tags of an HTML text with their attributes (entities of the
/// five `escape_html` makes decoded), tokenized as a browser does for what
/// the reply can hold: `<!…>` and end tags skipped, attribute values
/// double-, single- or unquoted, and no tag inside a quoted value.
fn start_tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    let until = |i: &mut usize, stop: &dyn Fn(u8) -> bool| {
        let start = *i;
        while *i < b.len() && !stop(b[*i]) {
            *i += 1;
        }
        html[start..*i].to_string()
    };
    while i < b.len() {
        if b[i] != b'<' || !b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            if b[i] == b'<' && matches!(b.get(i + 1), Some(b'!' | b'/')) {
                until(&mut i, &|c| c == b'>');
            }
            i += 1;
            continue;
        }
        i += 1;
        let name = until(&mut i, &|c| {
            c.is_ascii_whitespace() || c == b'>' || c == b'/'
        });
        let mut attributes = Vec::new();
        loop {
            until(&mut i, &|c| !c.is_ascii_whitespace() && c != b'/');
            if i >= b.len() || b[i] == b'>' {
                break;
            }
            let attribute = until(&mut i, &|c| {
                c.is_ascii_whitespace() || c == b'=' || c == b'>' || c == b'/'
            });
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                value = match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        i += 1;
                        let v = until(&mut i, &|c| c == q);
                        i += 1;
                        v
                    }
                    _ => until(&mut i, &|c| c.is_ascii_whitespace() || c == b'>'),
                };
            }
            attributes.push((attribute.to_ascii_lowercase(), unescape_html(&value)));
        }
        tags.push((name.to_ascii_lowercase(), attributes));
        i += 1;
    }
    tags
}

/// A file name made to break out of the `text/html` reply's attribute:
/// the page keeps its skeleton and its two `data-` attributes, and the
/// attribute decodes back to the name as sent.
#[test]
fn file_names_cannot_inject_html() {
    let core = core("html");
    // A '/' or '\' would cut the name to its last path component.
    for name in [
        "x\" onload=\"alert(1)",
        "x' onload='alert(1)",
        "\"><script>alert(1)<",
        "<svg onload=alert(1)>",
        "&quot;&gt;&lt;script&gt;",
        "a&b<c>d\"e'f",
    ] {
        // As browsers and curl send a quote in a file name.
        let sent = name.replace('"', "%22");
        let r = core.ask(
            "POST",
            "/upload?X-Progress-ID=html-inj",
            &[("Content-Type", FORM), ("Accept", "text/html")],
            &one_file(&sent, b"hello\n"),
            None,
        );
        assert_eq!(r.status, 201, "{name}");
        let html = String::from_utf8(r.body).unwrap();
        let tags = start_tags(&html);
        let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            names,
            ["html", "head", "meta", "title", "body", "p"],
            "{name}: {html}"
        );
        let body = &tags[4].1;
        let mut attributes: Vec<&str> = body.iter().map(|(a, _)| a.as_str()).collect();
        attributes.sort();
        assert_eq!(
            attributes,
            ["data-upload-identifier", "data-upload-info"],
            "{name}: {html}"
        );
        let info = &body
            .iter()
            .find(|(a, _)| a == "data-upload-info")
            .unwrap()
            .1;
        let info: Value = serde_json::from_str(info).unwrap();
        assert_eq!(info["files"][0]["filename"], name);
    }
}

/// CR and LF as browsers encode them in file and field names, with a
/// header after them: removed from the file name, and never in a reply's
/// head, the reply, the status document or the log.
#[test]
fn cr_lf_in_names_reach_no_header_reply_status_or_log() {
    let d = Daemon::start("crlf", &[]);
    let body = b"--XX\r\nContent-Disposition: form-data; name=\"n%0D%0AX-Injected: 1\"; filename=\"f%0D%0AX-Injected: 2.txt\"\r\n\r\nz\r\n\
        --XX\r\nContent-Disposition: form-data; name=\"k%0D%0AX-Injected: 3\"\r\n\r\nv\r\n--XX--\r\n";
    let (head, reply) = ask(
        &d,
        &upload_request(
            "/upload?X-Progress-ID=crlf-names",
            body.len(),
            body,
            &["Accept: text/html"],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 201 Created");
    assert!(!head.contains("X-Injected"), "{head}");
    let reply = String::from_utf8(reply).unwrap().replace(">\n", ">");
    assert!(!reply.contains(['\r', '\n']), "{reply}");
    let (head, status) = ask(
        &d,
        b"GET /upload/status?X-Progress-ID=crlf-names HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(!head.to_ascii_lowercase().contains("x-injected"), "{head}");
    let document: Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(document["files"][0]["filename"], "fX-Injected: 2.txt");
    let status = String::from_utf8(status).unwrap();
    assert!(
        !status.contains('\r') && !status.contains(r"\r") && !status.contains(r"\n"),
        "{status}"
    );
    // Both requests' lines, however the two connections' threads order
    // them.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(lines.iter().any(|l: &String| l.contains(" POST /upload "))
        && lines.iter().any(|l| l.contains(" GET /upload/status ")))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(d.log.recv_timeout(left).expect("the log lines"));
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("X-Injected")),
        "{lines:?}"
    );
}

#[test]
fn a_part_header_of_1_mib_is_refused() {
    let core = core("big-part-header");
    let mut body =
        b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\nX-Big: ".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1 << 20));
    body.extend_from_slice(b"\r\n\r\nz\r\n--XX--\r\n");
    let r = core.post("/upload?X-Progress-ID=big-header", &body);
    assert_eq!(r.status, 400);
    let error = json(&r)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("part headers longer than"), "{error}");
    assert_eq!(core.status("big-header")["state"], "error");
    assert_eq!(entries(&core.pool().join("big-header")), NO_FILE);
}

/// 100,000 tiny form fields: refused once 64 KiB of them have come, with a
/// bounded status document; 100,000 empty file inputs are no files at all.
#[test]
fn a_hundred_thousand_tiny_parts_are_bounded() {
    let core = core("tiny-parts");
    for name in ["a", ""] {
        let part = format!("--XX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n\r\n");
        let body = format!("{}--XX--\r\n", part.repeat(100_000));
        let r = core.post("/upload?X-Progress-ID=tiny-parts", body.as_bytes());
        assert_eq!(r.status, 413, "named [{name}]");
        let error = json(&r)["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("form fields larger than 65536 bytes"),
            "{error}"
        );
        let raw = core.get("/upload/status?X-Progress-ID=tiny-parts").body;
        let status: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            (&status["state"], &status["status"]),
            (&json!("error"), &json!(413))
        );
        // The fields before the limit are kept: 64 KiB of them and the
        // JSON around them.
        assert!(raw.len() < 512 * 1024, "{} bytes of status", raw.len());
    }
    let part = "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n";
    let body = format!("{}--XX--\r\n", part.repeat(100_000));
    let r = core.post("/upload?X-Progress-ID=empty-files", body.as_bytes());
    assert_eq!(r.status, 201);
    assert_eq!(entries(&core.pool().join("empty-files")), NO_FILE);
    assert_eq!(core.status("fine"), json!({"state": "starting"}));
}

#[test]
fn a_boundary_over_70_characters_is_refused() {
    let core = core("boundary");
    for n in [70, 71, 200] {
        let b = "b".repeat(n);
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nz\r\n--{b}--\r\n"
        );
        let content_type = format!("multipart/form-data; boundary={b}");
        let r = core.ask(
            "POST",
            &format!("/upload?X-Progress-ID=boundary-{n}"),
            &[("Content-Type", &content_type)],
            body.as_bytes(),
            Some(body.len() as u64),
        );
        if n <= 70 {
            assert_eq!(r.status, 201, "{n}");
        } else {
            assert_eq!(r.status, 400, "{n}");
            let error = json(&r)["error"].as_str().unwrap().to_owned();
            assert!(error.contains("RFC 2046"), "{error}");
        }
    }
}

#[test]
fn a_missing_final_boundary_fails_the_upload() {
    let core = core("no-final");
    for (id, body) in [
        (
            "no-final",
            &b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\ncomplete data\r\n"[..],
        ),
        (
            "no-final-2",
            b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\ndata\r\n--XX\r\n",
        ),
    ] {
        let r = core.post(&format!("/upload?X-Progress-ID={id}"), body);
        assert_eq!(r.status, 400, "{id}");
        assert_eq!(core.status(id)["state"], "error", "{id}");
        assert_eq!(entries(&core.pool().join(id)), NO_FILE, "{id}");
    }
}

/// The upload is exactly what `Content-Length` covers; the bytes after it
/// are read as a next request, refused, and the connection closed. A
/// `Content-Length` ending inside the form fails the upload.
#[test]
fn a_body_longer_than_its_content_length() {
    let d = Daemon::start("longer", &[]);
    let mut longer = EXACT.to_vec();
    longer.extend_from_slice(b"EXTRA BYTES THAT ARE NOT HTTP\r\n\r\n");
    let mut s = d.connect();
    s.write_all(&upload_request(
        "/upload?X-Progress-ID=longer",
        EXACT.len(),
        &longer,
        &[],
    ))
    .unwrap();
    let (head, _) = read_answer(&mut s);
    assert_eq!(status_line(&head), "HTTP/1.1 201 Created");
    assert_eq!(std::fs::read(d.pool.join("longer/0")).unwrap(), b"exact");
    assert_eq!(status_of(&d, "longer")["received"], EXACT.len());
    let rest = read_to_close(&mut s);
    assert!(rest.starts_with("HTTP/1.1 400 "), "{rest}");
    assert_eq!(rest.matches("HTTP/1.1 ").count(), 1, "{rest}");

    let (head, _) = ask(
        &d,
        &upload_request(
            "/upload?X-Progress-ID=cut-short",
            EXACT.len() - 10,
            EXACT,
            &[],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request");
    assert_eq!(entries(&d.pool.join("cut-short")), NO_FILE);
}

/// A whole form, but a `Content-Length` 1000 bytes longer: when the client
/// closes, 400; when it waits, 408 after the idle timeout. The upload fails
/// either way and leaves no file.
#[test]
fn a_body_shorter_than_its_content_length() {
    let d = Daemon::start("shorter", &["--idle-timeout", "1s"]);
    let mut s = d.connect();
    s.write_all(&upload_request(
        "/upload?X-Progress-ID=shorter",
        EXACT.len() + 1000,
        EXACT,
        &[],
    ))
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (head, _) = read_answer(&mut s);
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request");
    let (head, _) = ask(
        &d,
        &upload_request(
            "/upload?X-Progress-ID=shorter-wait",
            EXACT.len() + 1000,
            EXACT,
            &[],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 408 Request Timeout");
    for id in ["shorter", "shorter-wait"] {
        assert_eq!(status_of(&d, id)["state"], "error", "{id}");
        assert_eq!(entries(&d.pool.join(id)), NO_FILE, "{id}");
    }
}

/// Uploads framed both ways, or by two lengths, are refused before the
/// core sees them: nothing is created. A chunk line without end, after a
/// whole chunk of the form, fails the upload.
#[test]
fn ambiguous_framing_creates_nothing() {
    let d = Daemon::start("framing", &[]);
    let before = entries(&d.pool);
    let mut chunked = format!("{:x}\r\n", EXACT.len()).into_bytes();
    chunked.extend_from_slice(EXACT);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (head, _) = ask(
        &d,
        &upload_request(
            "/upload?X-Progress-ID=te-cl",
            5,
            &chunked,
            &["Transfer-Encoding: chunked"],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request", "TE and CL");
    let (head, _) = ask(
        &d,
        &upload_request(
            "/upload?X-Progress-ID=cl-cl",
            EXACT.len(),
            EXACT,
            &["Content-Length: 5"],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request", "CL and CL");
    assert_eq!(entries(&d.pool), before);

    let mut request = format!(
        "POST /upload?X-Progress-ID=chunk-line HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        EXACT.len()
    )
    .into_bytes();
    request.extend_from_slice(EXACT);
    request
        .extend_from_slice(format!("\r\n1;{}\r\nz\r\n0\r\n\r\n", "e".repeat(100_000)).as_bytes());
    let (head, _) = ask(&d, &request);
    assert_eq!(status_line(&head), "HTTP/1.1 400 Bad Request", "chunk line");
    assert_eq!(status_of(&d, "chunk-line")["state"], "error");
}

/// 10,000 query parameters are answered as usual; 100,000 make a head over
/// 64 KiB, which is 431.
#[test]
fn many_query_parameters() {
    let d = Daemon::start("params", &[]);
    let params = |n: usize| {
        (0..n)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let q = params(10_000);
    let (head, body) = ask(
        &d,
        format!("GET /upload/status?{q}&X-Progress-ID=many-params HTTP/1.1\r\nHost: x\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 200 OK");
    assert_eq!(body, br#"{"state":"starting"}"#);
    let form = one_file("a.txt", b"hello\n");
    let (head, _) = ask(
        &d,
        &upload_request(
            &format!("/upload?{q}&X-Progress-ID=many-params-up"),
            form.len(),
            &form,
            &[],
        ),
    );
    assert_eq!(status_line(&head), "HTTP/1.1 201 Created");
    let (head, _) = ask(
        &d,
        format!(
            "GET /upload/status?{}&X-Progress-ID=many-params HTTP/1.1\r\nHost: x\r\n\r\n",
            params(100_000)
        )
        .as_bytes(),
    );
    assert_eq!(
        status_line(&head),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

/// `fileupload` with `args` on `pool`: whether it succeeded.
fn cli(pool: &Path, args: &[&str]) -> bool {
    Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(pool)
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

/// A bucket replaced by a link (by another local user) to a directory
/// outside the pool, and `status.json` or `lock` in a bucket replaced by a
/// link: 500, and the target is neither read, written nor removed, by the
/// core, the CLI or `gc`.
#[test]
fn links_in_the_pool_are_never_followed() {
    let core = core("links");
    let victim = core.root.path().join("outside/victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(
        victim.join("status.json"),
        r#"{"state":"done","received":1}"#,
    )
    .unwrap();
    std::fs::write(victim.join("0"), "secret").unwrap();
    let evil = core.pool().join("evil");
    std::os::unix::fs::symlink(&victim, &evil).unwrap();
    // Another user's link where the test may give it away (as root).
    let _ = std::os::unix::fs::lchown(&evil, Some(65534), None);
    let r = core.get("/upload/status?X-Progress-ID=evil");
    assert_eq!(r.status, 500);
    let error = json(&r)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("refusing to follow it"), "{error}");
    let form = one_file("a.txt", b"hello\n");
    assert_eq!(core.post("/upload?X-Progress-ID=evil", &form).status, 500);
    assert_eq!(core.get("/upload?X-Progress-ID=evil&clear").status, 500);
    assert_eq!(entries(&victim), ["0", "status.json"]);
    assert_eq!(std::fs::read(victim.join("0")).unwrap(), b"secret");
    assert!(
        !cli(&core.pool(), &["status", "evil"]),
        "the CLI followed it"
    );
    assert!(cli(&core.pool(), &["gc", "--older-than", "0s"]));
    assert!(
        evil.is_symlink() && victim.join("0").exists(),
        "gc followed it"
    );

    assert_eq!(core.post("/upload?X-Progress-ID=linked", &form).status, 201);
    let bucket = core.pool().join("linked");
    std::fs::remove_file(bucket.join("status.json")).unwrap();
    std::os::unix::fs::symlink(victim.join("0"), bucket.join("status.json")).unwrap();
    let r = core.get("/upload/status?X-Progress-ID=linked");
    assert_eq!(r.status, 500);
    assert!(
        !String::from_utf8_lossy(&r.body).contains("secret"),
        "the link's target reached the reply"
    );
    std::fs::remove_file(bucket.join("lock")).unwrap();
    std::os::unix::fs::symlink(victim.join("0"), bucket.join("lock")).unwrap();
    assert_eq!(core.post("/upload?X-Progress-ID=linked", &form).status, 500);
    assert_eq!(std::fs::read(victim.join("0")).unwrap(), b"secret");
}

#[test]
fn buckets_are_0700_and_files_0600() {
    let core = core("modes");
    let r = core.post(
        "/upload?X-Progress-ID=modes",
        &one_file("a.txt", b"hello\n"),
    );
    assert_eq!(r.status, 201);
    let mode = |p: &str| {
        std::fs::metadata(core.pool().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("modes"), 0o700);
    for file in ["modes/0", "modes/lock", "modes/status.json"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

const KEY: &[u8] = b"hostile-key";

/// The MAC of `id` under [`KEY`], in hex.
fn mac(id: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY);
    to_hex(ring::hmac::sign(&key, id.as_bytes()).as_ref())
}

#[test]
fn forged_macs_are_refused() {
    let core = Core::open("macs", Limits::default(), Some(KEY), 4);
    let right = mac("victim");
    let good = format!("victim:{right}");
    let form = one_file("a.txt", b"hello\n");
    assert_eq!(
        core.post(&format!("/upload?X-Progress-ID={good}"), &form)
            .status,
        201
    );
    let reversed: String = right.chars().rev().collect();
    for forged in [
        format!("victim:{}", "0".repeat(64)),
        format!("victim:{}", &right[..63]),
        format!("victim:{}", &right[..62]),
        format!("victim:{}", right.to_ascii_uppercase()),
        format!("victim:{}", mac("other")),
        format!("victim:{right}00"),
        "victim:".to_string(),
        format!("victim::{right}"),
        format!("Victim:{right}"),
        format!("victim:{reversed}"),
        format!("victim%00:{right}"),
        format!("victim%3A{right}x"),
    ] {
        for url in [
            format!("/upload/status?X-Progress-ID={forged}"),
            format!("/upload?X-Progress-ID={forged}&clear"),
        ] {
            assert_eq!(core.get(&url).status, 400, "{url}");
        }
    }
    assert_eq!(core.status(&good)["state"], "done", "a forged clear");
}

/// A wrong MAC whose first byte is right is not answered measurably faster
/// or slower than one whose first byte is wrong (`ring` compares in
/// constant time). Many requests, interleaved at random on one kept-alive
/// connection, medians compared with a generous bound: a loaded machine
/// slows both kinds alike. Up to three rounds, as noise can spoil one but
/// a real difference shows in every round.
#[test]
fn a_wrong_macs_first_byte_does_not_change_the_answer_time() {
    let dir = TempDir::new("timing-key");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start("timing", &["--key-file", key_file.to_str().unwrap()]);
    let right = mac("victim");
    let flip = |c: char| if c != '0' { '0' } else { '1' };
    let first_right: String = right[..2]
        .chars()
        .chain(right[2..].chars().map(flip))
        .collect();
    let first_wrong: String = right[..2]
        .chars()
        .map(flip)
        .chain(right[2..].chars())
        .collect();
    let requests = [first_right, first_wrong].map(|mac| {
        format!("GET /upload/status?X-Progress-ID=victim:{mac} HTTP/1.1\r\nHost: x\r\n\r\n")
    });
    // xorshift64, seeded: the same interleaving every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let mut order: Vec<usize> = [0, 1].repeat(1500);
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let mut s = d.connect();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut times = [Vec::new(), Vec::new()];
        for kind in order {
            let t = Instant::now();
            s.write_all(requests[kind].as_bytes()).unwrap();
            let (head, _) = read_answer(&mut reader);
            times[kind].push(t.elapsed());
            assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
            assert_eq!(header(&head, "Connection"), None, "kept alive: {head}");
        }
        let [a, b] = times.map(|mut t| {
            t.sort();
            (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2
        });
        let bound = (a.min(b) / 4).max(Duration::from_micros(100));
        let round = format!("median {a:?} (first byte right) vs {b:?} (wrong), bound {bound:?}");
        eprintln!("round {}: {round}", rounds.len() + 1);
        rounds.push(round);
        if a.abs_diff(b) <= bound {
            return;
        }
    }
    panic!("the answer time differs in every round: {rounds:#?}");
}
