//! The edge of the core: an [`Outcome`] rendered as the wire-neutral
//! [`Response`] every front end writes. JSON, JSONP, the iframe
//! transport's HTML and the Prometheus text format are made here and
//! nowhere else.

use std::fmt::{Display, Write};
use std::time::{Duration, UNIX_EPOCH};

use crate::app::demo::{self, Page};
use crate::app::metrics::{DURATION_BOUNDS, ProcessMetrics, ROUTES};
use crate::app::{Answer, Outcome, Route, Tus, TusAnswer};
use crate::log::http_date;
use crate::model::error::{Error, ErrorKind};
use crate::model::http::{HeaderName, HeaderValue, Response, escape_html, header};
use crate::model::status::State;
use crate::model::tus;
use crate::pool::PoolGauges;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const JAVASCRIPT: HeaderValue = HeaderValue::from_static("application/javascript");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
/// How long a client refused for want of an upload slot should wait.
const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
const POLICY: HeaderValue = HeaderValue::from_static(demo::CONTENT_SECURITY_POLICY);
/// The Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
const TUS_VERSION: HeaderValue = HeaderValue::from_static(tus::VERSION);
/// The tus extensions implemented, and only those.
const TUS_EXTENSIONS: HeaderValue = HeaderValue::from_static(
    "creation,creation-with-upload,creation-defer-length,termination,checksum,concatenation,expiration",
);
const TUS_CHECKSUMS: HeaderValue = HeaderValue::from_static(tus::CHECKSUM_ALGORITHMS);
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const DEFER: HeaderValue = HeaderValue::from_static("1");
/// What a page on a listed origin may send (the methods tus clients use,
/// and `OPTIONS`) and with which headers: tus' request headers, as tusd
/// lists them, and `X-Progress-ID` of the multipart endpoints.
const CORS_METHODS: HeaderValue =
    HeaderValue::from_static("POST, GET, HEAD, PATCH, DELETE, OPTIONS");
const CORS_REQUEST_HEADERS: HeaderValue = HeaderValue::from_static(
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, \
     Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, \
     Upload-Defer-Length, Upload-Concat, Upload-Checksum, X-Progress-ID",
);
/// The answer headers a page may read: the tus ones, beyond what CORS
/// lets it read anyway.
const CORS_EXPOSED: HeaderValue = HeaderValue::from_static(
    "Upload-Offset, Location, Upload-Length, Tus-Version, Tus-Resumable, Tus-Max-Size, \
     Tus-Extension, Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Expires, \
     Upload-Checksum",
);
/// How long a browser may keep a preflight's answer: a day, as tusd.
const CORS_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// The response for an outcome, with the status [`Outcome::status`] gives.
pub fn render(outcome: Outcome) -> Response {
    let Outcome {
        route,
        callback,
        answer,
        cors_origin,
        ..
    } = outcome;
    let callback = callback.as_deref();
    let preflight = matches!(answer, Ok(Answer::Preflight));
    let rendered = match answer {
        Ok(Answer::Status(status)) => encode(&status).map(|json| document(200, callback, json)),
        Ok(Answer::Cleared) => Ok(document(200, callback, br#"{"success":true}"#.to_vec())),
        Ok(Answer::Uploaded { description, html }) => encode(&description).map(|json| {
            if html {
                iframe_reply(description.identifier.as_deref().unwrap_or(""), &json)
            } else {
                Response::new(201, JSON, json)
            }
        }),
        Ok(Answer::Page(page)) => Ok(page_response(page)),
        Ok(Answer::Metrics(report)) => Ok(Response::new(
            200,
            PROMETHEUS_TEXT,
            exposition(Some(&report.process), &report.pool).into_bytes(),
        )),
        Ok(Answer::Healthy) => Ok(Response::new(200, JSON, br#"{"healthy":true}"#.to_vec())),
        Ok(Answer::Application(response)) => Ok(response),
        Ok(Answer::Tus(answer)) => tus_response(answer),
        Ok(Answer::Preflight) => Ok(Response {
            status: 204,
            headers: vec![
                (header::ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_REQUEST_HEADERS),
                (header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE),
            ],
            body: Vec::new(),
        }),
        Err(e) => Err(e),
    };
    let response = rendered.unwrap_or_else(|e| error_response(route, &e, callback));
    match cors_origin {
        Some(origin) => with_cors(response, origin, preflight),
        None => response,
    }
}

/// An answer to a page on a listed origin: the origin allowed (the listed
/// value), `Vary: Origin` since the answer differs by origin, and but for
/// a preflight the headers the page may read.
fn with_cors(response: Response, origin: HeaderValue, preflight: bool) -> Response {
    let response = response
        .with_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
        .with_header(header::VARY, VARY_ORIGIN);
    if preflight {
        response
    } else {
        response.with_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSED)
    }
}

/// The answer for an error: its JSON (or JSONP) body with its status, and
/// the headers its kind calls for.
fn error_response(route: Option<Route>, err: &Error, callback: Option<&str>) -> Response {
    let mut response = document(
        err.status(),
        callback,
        err.to_json().to_string().into_bytes(),
    );
    match (err.kind(), route) {
        (ErrorKind::Unavailable, _) => {
            response = response.with_header(header::RETRY_AFTER, RETRY_AFTER);
        }
        (ErrorKind::MethodNotAllowed, Some(Route::MethodNotAllowed(allow))) => {
            response = response.with_header(header::ALLOW, HeaderValue::from_static(allow));
        }
        (ErrorKind::PreconditionFailed, Some(Route::Tus(_))) => {
            response = response.with_header(header::TUS_VERSION, TUS_VERSION);
        }
        _ => {}
    }
    // Every tus answer but OPTIONS' says the version, errors too.
    if matches!(route, Some(Route::Tus(t)) if t != Tus::Options) {
        response = response.with_header(header::TUS_RESUMABLE, TUS_VERSION);
    }
    response
}

/// A tus answer: its status and headers, no body.
fn tus_response(answer: TusAnswer) -> Result<Response, Error> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let number = |n: u64| HeaderValue::new(n.to_string());
    let status = match answer {
        TusAnswer::Options { max_size } => {
            headers.push((header::TUS_VERSION, TUS_VERSION));
            headers.push((header::TUS_EXTENSION, TUS_EXTENSIONS));
            headers.push((header::TUS_CHECKSUM_ALGORITHM, TUS_CHECKSUMS));
            if let Some(max) = max_size {
                headers.push((header::TUS_MAX_SIZE, number(max)?));
            }
            // OPTIONS is the one tus answer without Tus-Resumable.
            return Ok(Response {
                status: 204,
                headers,
                body: Vec::new(),
            });
        }
        TusAnswer::Created {
            location,
            offset,
            expires,
            ..
        } => {
            headers.push((header::LOCATION, HeaderValue::new(location)?));
            headers.push((header::UPLOAD_OFFSET, number(offset)?));
            push_expires(&mut headers, expires)?;
            201
        }
        TusAnswer::Info {
            offset,
            length,
            metadata,
            expires,
            concat,
        } => {
            headers.push((header::UPLOAD_OFFSET, number(offset)?));
            match length {
                Some(length) => headers.push((header::UPLOAD_LENGTH, number(length)?)),
                None => headers.push((header::UPLOAD_DEFER_LENGTH, DEFER)),
            }
            if let Some(metadata) = metadata {
                headers.push((header::UPLOAD_METADATA, HeaderValue::new(metadata)?));
            }
            // The value as recorded, checked at creation, and checked again
            // here: never client bytes unchecked in a header.
            if let Some(concat) = concat {
                headers.push((header::UPLOAD_CONCAT, HeaderValue::new(concat)?));
            }
            push_expires(&mut headers, expires)?;
            headers.push((header::CACHE_CONTROL, NO_STORE));
            200
        }
        TusAnswer::Patched {
            offset, expires, ..
        } => {
            headers.push((header::UPLOAD_OFFSET, number(offset)?));
            push_expires(&mut headers, expires)?;
            204
        }
        TusAnswer::Terminated => 204,
    };
    headers.push((header::TUS_RESUMABLE, TUS_VERSION));
    Ok(Response {
        status,
        headers,
        body: Vec::new(),
    })
}

/// `Upload-Expires` (an HTTP date) for an unfinished upload.
fn push_expires(
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    expires: Option<u64>,
) -> Result<(), Error> {
    // A time beyond what the clock can say (a status edited by hand) is
    // no promise to make.
    if let Some(at) = expires.and_then(|at| UNIX_EPOCH.checked_add(Duration::from_secs(at))) {
        headers.push((header::UPLOAD_EXPIRES, HeaderValue::new(http_date(at))?));
    }
    Ok(())
}

/// A JSON document, or with a callback `/**/NAME(json);`: the comment and
/// `nosniff` defend against the Rosetta Flash class of attacks
/// (CVE-2014-4671).
fn document(status: u16, callback: Option<&str>, json: Vec<u8>) -> Response {
    match callback {
        None => Response::new(status, JSON, json),
        Some(name) => {
            let mut body = Vec::with_capacity(json.len() + name.len() + 8);
            body.extend_from_slice(b"/**/");
            body.extend_from_slice(name.as_bytes());
            body.push(b'(');
            body.extend_from_slice(&json);
            body.extend_from_slice(b");");
            Response::new(status, JAVASCRIPT, body)
                .with_header(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF)
        }
    }
}

/// The documents are plain structures with string keys: encoding them
/// cannot fail, but should it ever, the client learns it as a 500.
fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("cannot encode the answer: {e}")))
}

/// The original's iframe transport: the description in data attributes.
fn iframe_reply(identifier: &str, json: &[u8]) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Upload complete</title></head>\n\
         <body data-upload-identifier=\"{}\" data-upload-info=\"{}\"><p>Upload complete.</p></body></html>\n",
        escape_html(identifier),
        escape_html(&String::from_utf8_lossy(json))
    );
    Response::new(201, HTML, body.into_bytes())
}

fn page_response(page: &Page) -> Response {
    Response::new(
        200,
        page.content_type.clone(),
        page.body.as_bytes().to_vec(),
    )
    .with_header(header::CONTENT_SECURITY_POLICY, POLICY)
    .with_header(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF)
    .with_header(header::REFERRER_POLICY, NO_REFERRER)
}

/// The metrics in the Prometheus text exposition format (version 0.0.4):
/// this process's counters when given, then the pool's gauges, each family
/// with its `HELP` and `TYPE`. `fileupload metrics` prints the pool's part.
pub fn exposition(process: Option<&ProcessMetrics>, pool: &PoolGauges) -> String {
    let mut out = Exposition(String::new());
    if let Some(p) = process {
        out.single(
            "fileupload_uploads_started_total",
            "counter",
            "Uploads this process took on.",
            p.uploads_started,
        );
        out.single(
            "fileupload_uploads_done_total",
            "counter",
            "Uploads this process stored.",
            p.uploads_done,
        );
        out.labelled(
            "fileupload_uploads_failed_total",
            "counter",
            "Uploads of this process that failed, by the kind of their error.",
            "reason",
            ErrorKind::ALL
                .iter()
                .map(|k| k.label())
                .zip(p.uploads_failed),
        );
        out.single(
            "fileupload_received_bytes_total",
            "counter",
            "Request body bytes this process read.",
            p.received_bytes,
        );
        out.single(
            "fileupload_status_requests_total",
            "counter",
            "Status requests this process answered.",
            p.status_requests,
        );
        out.single(
            "fileupload_uploads_in_progress",
            "gauge",
            "Uploads in progress in this process.",
            p.uploads_in_progress,
        );
        let name = "fileupload_request_duration_seconds";
        out.family(
            name,
            "histogram",
            "Time this process took to answer a request, by route.",
        );
        for (route, d) in ROUTES.iter().zip(&p.durations) {
            let bucket = format!("{name}_bucket");
            for (bound, n) in DURATION_BOUNDS.iter().zip(d.cumulative) {
                out.sample(&bucket, &[("route", route), ("le", &bound.to_string())], n);
            }
            out.sample(&bucket, &[("route", route), ("le", "+Inf")], d.count);
            out.sample(&format!("{name}_sum"), &[("route", route)], d.sum);
            out.sample(&format!("{name}_count"), &[("route", route)], d.count);
        }
    }
    out.labelled(
        "fileupload_pool_buckets",
        "gauge",
        "Buckets in the pool, by the state of their upload.",
        "state",
        State::ALL.iter().map(|s| s.as_str()).zip(pool.buckets),
    );
    out.single(
        "fileupload_pool_stored_bytes",
        "gauge",
        "Bytes of the stored files of finished uploads in the pool.",
        pool.stored_bytes,
    );
    out.0
}

/// The text format being written. Label values are fixed words of ours
/// (routes, error kinds, states, bounds), never a client's text, so none
/// needs escaping.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        for (n, (label, text)) in labels.iter().enumerate() {
            let open = if n == 0 { "{" } else { "," };
            let _ = write!(self.0, "{open}{label}=\"{text}\"");
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one sample for each value of one label.
    fn labelled<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, kind, help);
        for (text, value) in values {
            self.sample(name, &[(label, text)], value);
        }
    }

    /// A family of one sample without labels.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::route;

    #[test]
    fn an_error_is_its_json() {
        let r = render(Outcome::refused(Error::bad_request("no")));
        assert_eq!(r.status, 400);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, br#"{"error":"no","state":"error","status":400}"#);
        assert_eq!(r.header("Allow"), None);
        assert_eq!(r.header("Retry-After"), None);
    }

    /// Every `Allow` the router can give is a valid header value, so
    /// rendering a 405 never fails its check.
    #[test]
    fn every_allow_renders() {
        for (method, path) in [
            ("PUT", "/upload"),
            ("POST", "/upload/status"),
            ("PUT", "/upload/clear"),
            ("GET", "/files/a"),
            ("PUT", "/files"),
        ] {
            let route = route(method, path, "");
            let Route::MethodNotAllowed(allow) = route else {
                panic!("{method} {path}: {route:?}");
            };
            let mut outcome = Outcome::new(route);
            outcome.answer = Err(Error::new(ErrorKind::MethodNotAllowed, "no"));
            let r = render(outcome);
            assert_eq!((r.status, r.header("Allow")), (405, Some(allow)));
        }
    }

    /// Every tus answer but OPTIONS' says `Tus-Resumable`, errors too; a
    /// 412 says the version spoken.
    #[test]
    fn tus_errors_say_the_version() {
        for (tus, kind, resumable, version) in [
            (Tus::Patch, ErrorKind::Conflict, Some("1.0.0"), None),
            (
                Tus::Head,
                ErrorKind::PreconditionFailed,
                Some("1.0.0"),
                Some("1.0.0"),
            ),
            (Tus::Options, ErrorKind::Internal, None, None),
        ] {
            let mut outcome = Outcome::new(Route::Tus(tus));
            outcome.answer = Err(Error::new(kind, "no"));
            let r = render(outcome);
            assert_eq!(r.status, kind.status());
            assert_eq!(r.header("Tus-Resumable"), resumable, "{tus:?}");
            assert_eq!(r.header("Tus-Version"), version, "{tus:?}");
        }
        // Not on the multipart routes.
        let mut outcome = Outcome::new(Route::Upload);
        outcome.answer = Err(Error::new(ErrorKind::PreconditionFailed, "no"));
        assert_eq!(render(outcome).header("Tus-Resumable"), None);
    }

    #[test]
    fn tus_answers_have_no_body_and_typed_headers() {
        let mut outcome = Outcome::new(Route::Tus(Tus::Head));
        outcome.answer = Ok(Answer::Tus(TusAnswer::Info {
            offset: 3,
            length: None,
            metadata: Some("a Zg==".into()),
            expires: Some(1_795_489_666),
            concat: Some("partial".into()),
        }));
        let r = render(outcome);
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.header("Upload-Offset"), Some("3"));
        assert_eq!(r.header("Upload-Length"), None);
        assert_eq!(r.header("Upload-Defer-Length"), Some("1"));
        assert_eq!(r.header("Upload-Metadata"), Some("a Zg=="));
        assert_eq!(r.header("Upload-Concat"), Some("partial"));
        assert_eq!(
            r.header("Upload-Expires"),
            Some("Tue, 24 Nov 2026 03:07:46 GMT")
        );
        assert_eq!(r.header("Content-Type"), None);
        // A time past what the clock can say is no promise to make.
        let mut outcome = Outcome::new(Route::Tus(Tus::Patch));
        outcome.answer = Ok(Answer::Tus(TusAnswer::Patched {
            offset: 1,
            completed: false,
            expires: Some(u64::MAX),
        }));
        let r = render(outcome);
        assert_eq!((r.status, r.header("Upload-Expires")), (204, None));
        // A value that could split the head is never written: 500.
        let mut outcome = Outcome::new(Route::Tus(Tus::Head));
        outcome.answer = Ok(Answer::Tus(TusAnswer::Info {
            offset: 0,
            length: Some(1),
            metadata: Some("a\r\nSet-Cookie: x=y".into()),
            expires: None,
            concat: None,
        }));
        let r = render(outcome);
        assert_eq!(r.status, 500);
        assert_eq!(r.header("Set-Cookie"), None);
        // Nor an Upload-Concat (from a status edited by hand: the creation
        // refuses such URLs).
        let mut outcome = Outcome::new(Route::Tus(Tus::Head));
        outcome.answer = Ok(Answer::Tus(TusAnswer::Info {
            offset: 0,
            length: Some(1),
            metadata: None,
            expires: None,
            concat: Some("final;/files/a\r\nSet-Cookie: x=y".into()),
        }));
        let r = render(outcome);
        assert_eq!((r.status, r.header("Set-Cookie")), (500, None));
    }

    #[test]
    fn pool_gauges_as_text() {
        let pool = PoolGauges {
            buckets: [0, 1, 2, 3],
            stored_bytes: 42,
        };
        assert_eq!(
            exposition(None, &pool),
            "# HELP fileupload_pool_buckets Buckets in the pool, by the state of their upload.\n\
             # TYPE fileupload_pool_buckets gauge\n\
             fileupload_pool_buckets{state=\"starting\"} 0\n\
             fileupload_pool_buckets{state=\"uploading\"} 1\n\
             fileupload_pool_buckets{state=\"done\"} 2\n\
             fileupload_pool_buckets{state=\"error\"} 3\n\
             # HELP fileupload_pool_stored_bytes Bytes of the stored files of finished uploads in the pool.\n\
             # TYPE fileupload_pool_stored_bytes gauge\n\
             fileupload_pool_stored_bytes 42\n"
        );
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let mut outcome = Outcome::new(Route::Upload);
        outcome.answer = Err(Error::new(ErrorKind::Unavailable, "busy"));
        assert_eq!(render(outcome).header("Retry-After"), Some("5"));
    }

    #[test]
    fn status_of_every_answer() {
        let mut outcome = Outcome::new(Route::Clear);
        outcome.answer = Ok(Answer::Cleared);
        outcome.callback = Some("cb".into());
        assert_eq!(outcome.status(), 200);
        let r = render(outcome);
        assert_eq!(r.body, br#"/**/cb({"success":true});"#);
        assert_eq!(r.header("Content-Type"), Some("application/javascript"));
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        let mut outcome = Outcome::new(Route::Upload);
        let relayed = Response::new(299, JSON, Vec::new());
        outcome.answer = Ok(Answer::Application(relayed.clone()));
        assert_eq!(outcome.status(), 299);
        assert_eq!(render(outcome), relayed);
    }
}
