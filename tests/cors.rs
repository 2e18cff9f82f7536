//! CORS for browser pages on other origins (`--cors-origin`), against the
//! built daemon over real sockets and the CGI program as a web server runs
//! it: preflights, the headers of actual answers (errors too), and what
//! an origin that is not listed gets (nothing). docs/tus.md and SECURITY.md
//! name these tests.

mod common;

use std::process::Command;

use common::{Daemon, header};

const APP: &str = "https://app.example";
const OTHER: &str = "http://b.example:8080";
const ALLOW_METHODS: &str = "POST, GET, HEAD, PATCH, DELETE, OPTIONS";
const REQUEST_HEADERS: [&str; 14] = [
    "Authorization",
    "Origin",
    "X-Requested-With",
    "X-Request-ID",
    "X-HTTP-Method-Override",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Tus-Resumable",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "X-Progress-ID",
];
const EXPOSED: [&str; 12] = [
    "Upload-Offset",
    "Location",
    "Upload-Length",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Expires",
    "Upload-Checksum",
];

/// One request on its own connection (`Connection: close`); the answer's
/// head.
fn ask(d: &Daemon, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let answer = d.exchange(&request);
    let end = answer.find("\r\n\r\n").expect("a whole head");
    answer[..end + 2].to_owned()
}

fn status(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap()
}

/// The names in a comma-separated header value.
fn names(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether the head has any `Access-Control-*` field (or `Vary`, which
/// comes with them).
fn has_cors(head: &str) -> bool {
    head.lines().skip(1).any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("access-control-") || l.starts_with("vary:")
    })
}

/// Asserts a preflight's answer for `origin`: 204, the origin, what may
/// be sent, how long to keep it; no body.
fn assert_preflight(head: &str, origin: &str) {
    assert_eq!(status(head), 204, "{head}");
    assert_eq!(header(head, "Access-Control-Allow-Origin"), Some(origin));
    assert_eq!(header(head, "Vary"), Some("Origin"));
    assert_eq!(
        header(head, "Access-Control-Allow-Methods"),
        Some(ALLOW_METHODS)
    );
    assert_eq!(
        names(header(head, "Access-Control-Allow-Headers")),
        REQUEST_HEADERS
    );
    assert_eq!(header(head, "Access-Control-Max-Age"), Some("86400"));
    assert_eq!(header(head, "Content-Length"), None, "a 204 has none");
    assert_eq!(header(head, "Access-Control-Expose-Headers"), None);
}

/// Asserts an actual answer to a page on `origin`.
fn assert_allowed(head: &str, origin: &str) {
    assert_eq!(
        header(head, "Access-Control-Allow-Origin"),
        Some(origin),
        "{head}"
    );
    assert_eq!(header(head, "Vary"), Some("Origin"), "{head}");
    assert_eq!(
        names(header(head, "Access-Control-Expose-Headers")),
        EXPOSED,
        "{head}"
    );
}

#[test]
fn listed_origins_get_preflights_and_allowed_answers() {
    let d = Daemon::start(
        "cors-listed",
        &["--cors-origin", APP, "--cors-origin", OTHER],
    );
    let preflight = |path: &str, origin: &str, method: &str| {
        ask(
            &d,
            "OPTIONS",
            path,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "tus-resumable,upload-length,upload-metadata",
                ),
            ],
            b"",
        )
    };
    assert_preflight(&preflight("/files", APP, "POST"), APP);
    assert_preflight(&preflight("/app/files/", OTHER, "POST"), OTHER);
    assert_preflight(&preflight("/files/someid", APP, "PATCH"), APP);
    assert_preflight(&preflight("/upload/status", APP, "GET"), APP);
    assert_preflight(&preflight("/upload", APP, "POST"), APP);
    // tus' own OPTIONS (no Origin, no Access-Control-Request-Method) is
    // still tus': what the server supports, no CORS.
    let head = ask(&d, "OPTIONS", "/files", &[], b"");
    assert_eq!(status(&head), 204, "{head}");
    assert_eq!(header(&head, "Tus-Version"), Some("1.0.0"));
    assert!(!has_cors(&head), "{head}");
    // From a page on a listed origin it says so: the page may read it.
    let head = ask(&d, "OPTIONS", "/files", &[("Origin", APP)], b"");
    assert_eq!(header(&head, "Tus-Version"), Some("1.0.0"));
    assert_allowed(&head, APP);

    // Actual requests: a creation, HEAD, PATCH, an error, the status.
    let tus = ("Tus-Resumable", "1.0.0");
    let stream = ("Content-Type", "application/offset+octet-stream");
    let head = ask(
        &d,
        "POST",
        "/files",
        &[("Origin", APP), tus, ("Upload-Length", "5")],
        b"",
    );
    assert_eq!(status(&head), 201, "{head}");
    assert_allowed(&head, APP);
    let path = format!("/{}", header(&head, "Location").unwrap());
    let id = path.rsplit('/').next().unwrap().to_owned();
    let head = ask(
        &d,
        "PATCH",
        &path,
        &[("Origin", OTHER), tus, stream, ("Upload-Offset", "0")],
        b"hel",
    );
    assert_eq!(
        (status(&head), header(&head, "Upload-Offset")),
        (204, Some("3"))
    );
    assert_allowed(&head, OTHER);
    let head = ask(&d, "HEAD", &path, &[("Origin", APP), tus], b"");
    assert_eq!(status(&head), 200, "{head}");
    assert_allowed(&head, APP);
    // An error is readable too: the page must see a 409 to recover.
    let head = ask(
        &d,
        "PATCH",
        &path,
        &[("Origin", APP), tus, stream, ("Upload-Offset", "0")],
        b"x",
    );
    assert_eq!(status(&head), 409, "{head}");
    assert_allowed(&head, APP);
    let status_path = format!("/upload/status?X-Progress-ID={id}");
    let head = ask(&d, "GET", &status_path, &[("Origin", APP)], b"");
    assert_eq!(status(&head), 200, "{head}");
    assert_allowed(&head, APP);

    // Not listed, or listed only nearly (a slash, another case, another
    // port or scheme): nothing, so the browser refuses the page. Its
    // preflight gets what a plain OPTIONS gets.
    for origin in [
        "https://evil.example",
        "https://app.example/",
        "https://APP.example",
        "https://app.example:443",
        "http://app.example",
        "null",
    ] {
        let head = preflight("/files", origin, "POST");
        assert_eq!(status(&head), 204, "{origin}: {head}");
        assert_eq!(header(&head, "Tus-Version"), Some("1.0.0"), "{origin}");
        assert!(!has_cors(&head), "{origin}: {head}");
        let head = preflight("/upload/status", origin, "GET");
        assert_eq!(status(&head), 405, "{origin}: {head}");
        assert!(!has_cors(&head), "{origin}: {head}");
        let head = ask(&d, "HEAD", &path, &[("Origin", origin), tus], b"");
        assert_eq!(status(&head), 200, "{origin}: {head}");
        assert!(!has_cors(&head), "{origin}: {head}");
    }
    // The operator's endpoints answer no other origin.
    let head = ask(&d, "GET", "/healthz", &[("Origin", APP)], b"");
    assert_eq!(status(&head), 200, "{head}");
    assert!(!has_cors(&head), "{head}");
    let head = preflight("/healthz", APP, "GET");
    assert_eq!(status(&head), 405, "{head}");
    assert!(!has_cors(&head), "{head}");
}

/// Without `--cors-origin`, no answer has a CORS header, preflights
/// included.
#[test]
fn no_cors_by_default() {
    let d = Daemon::start("cors-none", &[]);
    let head = ask(
        &d,
        "OPTIONS",
        "/files",
        &[("Origin", APP), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(status(&head), 204, "{head}");
    assert_eq!(header(&head, "Tus-Version"), Some("1.0.0"));
    assert!(!has_cors(&head), "{head}");
    let head = ask(
        &d,
        "POST",
        "/files",
        &[
            ("Origin", APP),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "1"),
        ],
        b"",
    );
    assert_eq!(status(&head), 201, "{head}");
    assert!(!has_cors(&head), "{head}");
}

/// A value that is not an origin is refused at start.
#[test]
fn bad_origins_are_refused_at_start() {
    let dir = common::TempDir::new("cors-bad");
    for bad in ["*", "https://app.example/", "app.example", "https://a b"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fileupload"))
            .arg("--directory")
            .arg(dir.pool())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--cors-origin", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--cors-origin"), "{bad}: {stderr}");
    }
}

/// The CGI program as a web server runs it: `Origin` and
/// `Access-Control-Request-Method` arrive as `HTTP_ORIGIN` and
/// `HTTP_ACCESS_CONTROL_REQUEST_METHOD`, the origins in
/// `FILEUPLOAD_CORS_ORIGIN`. An `Origin` with CR LF (which a web server
/// may pass on in the variable) matches nothing and is never written.
#[test]
fn cgi_reads_the_origin_from_its_environment() {
    let dir = common::TempDir::new("cors-cgi");
    let pool = dir.pool();
    let cgi = |env: &[(&str, &str)]| {
        let mut all = vec![(
            "FILEUPLOAD_CORS_ORIGIN",
            "https://app.example,http://b.example:8080",
        )];
        all.extend_from_slice(env);
        // A head to read with `header`: a status line before the fields.
        format!("HTTP/1.1 {}", common::run_cgi(&pool, &all, b""))
    };
    let out = cgi(&[
        ("REQUEST_METHOD", "OPTIONS"),
        ("PATH_INFO", "/files"),
        ("HTTP_ORIGIN", OTHER),
        ("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "POST"),
    ]);
    assert!(out.contains("Status: 204 No Content\r\n"), "{out}");
    assert_eq!(header(&out, "Access-Control-Allow-Origin"), Some(OTHER));
    assert_eq!(
        header(&out, "Access-Control-Allow-Methods"),
        Some(ALLOW_METHODS)
    );
    let created = cgi(&[
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/files"),
        ("HTTP_ORIGIN", APP),
        ("HTTP_TUS_RESUMABLE", "1.0.0"),
        ("HTTP_UPLOAD_LENGTH", "3"),
    ]);
    assert!(created.contains("Status: 201 Created\r\n"), "{created}");
    assert_allowed(&created, APP);
    for hostile in [
        "https://app.example\r\nSet-Cookie: a=b",
        "https://app.example\n",
        "https://evil.example",
    ] {
        let out = cgi(&[
            ("REQUEST_METHOD", "OPTIONS"),
            ("PATH_INFO", "/files"),
            ("HTTP_ORIGIN", hostile),
            ("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "POST"),
        ]);
        assert!(out.contains("Status: 204 No Content\r\n"), "{out}");
        assert!(!has_cors(&out), "{hostile:?}: {out}");
        assert!(!out.contains("Set-Cookie"), "{hostile:?}: {out}");
        assert_eq!(header(&out, "Tus-Version"), Some("1.0.0"));
    }
}
