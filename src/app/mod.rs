//! The core: one function, [`App::handle`], that routes a [`Request`] and
//! answers it. Front ends only translate to and from it.

pub mod demo;
pub mod intercept;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::error::{Error, Result};
use crate::model::http::{Request, Response, escape_html, prefers_html, valid_callback};
use crate::model::identifier::Identifier;
use crate::model::multipart;
use crate::pool::Pool;
use intercept::Limits;

/// The name of the identifier, as a query parameter and as a header.
pub const PROGRESS_ID: &str = "X-Progress-ID";

/// What the program serves, and with which limits.
#[derive(Debug)]
pub struct App {
    pool: Pool,
    limits: Limits,
    takes_uploads: bool,
    max_uploads: usize,
    uploads: AtomicUsize,
    demo: bool,
}

/// What a request asks for, from its method, path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST …/upload`.
    Upload,
    /// `GET …/upload/status`, `GET …/upload?status`.
    Status,
    /// `…/upload/clear`, `…/upload?clear`, `DELETE …/upload`.
    Clear,
    /// A known path with a method it does not take; the value is `Allow`.
    MethodNotAllowed(&'static str),
    /// Anything else.
    NotFound,
}

/// Routes by the end of the path, so the program answers wherever it is
/// mounted (`/upload`, `/cgi-bin/fileupload/upload`, …).
///
/// ```
/// use fileupload::app::{route, Route};
/// assert_eq!(route("POST", "/cgi-bin/fileupload/upload", ""), Route::Upload);
/// assert_eq!(route("GET", "/upload/status", "X-Progress-ID=a"), Route::Status);
/// assert_eq!(route("GET", "/upload", "X-Progress-ID=a&clear"), Route::Clear);
/// assert_eq!(route("DELETE", "/upload", "X-Progress-ID=a"), Route::Clear);
/// assert_eq!(route("PUT", "/upload", ""), Route::MethodNotAllowed("POST, DELETE"));
/// assert_eq!(route("POST", "/myupload", ""), Route::NotFound);
/// ```
pub fn route(method: &str, path: &str, query: &str) -> Route {
    let path = path.strip_suffix('/').unwrap_or(path);
    let is = |end: &str| path == end || path.ends_with(&format!("/{end}"));
    let flag = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
    let read = matches!(method, "GET" | "HEAD");
    if is("upload/status") {
        return if read {
            Route::Status
        } else {
            Route::MethodNotAllowed("GET, HEAD")
        };
    }
    if is("upload/clear") {
        return if read || matches!(method, "POST" | "DELETE") {
            Route::Clear
        } else {
            Route::MethodNotAllowed("GET, POST, DELETE")
        };
    }
    if !is("upload") {
        return Route::NotFound;
    }
    match method {
        "DELETE" => Route::Clear,
        "GET" | "HEAD" | "POST" if flag("clear") => Route::Clear,
        "GET" | "HEAD" if flag("status") => Route::Status,
        "POST" => Route::Upload,
        _ => Route::MethodNotAllowed("POST, DELETE"),
    }
}

impl App {
    /// An app over `pool`. With `takes_uploads` false (a dedicated upload
    /// server is configured elsewhere) uploads are not taken here.
    pub fn new(pool: Pool, limits: Limits, takes_uploads: bool, max_uploads: usize) -> App {
        App {
            pool,
            limits,
            takes_uploads,
            max_uploads,
            uploads: AtomicUsize::new(0),
            demo: false,
        }
    }

    /// Also serves the demo pages (see [`crate::app::demo`]) at `/` and `/iframe`.
    pub fn with_demo(mut self, demo: bool) -> App {
        self.demo = demo;
        self
    }

    /// The pool this app serves.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Uploads in progress in this process.
    pub fn uploads_in_progress(&self) -> usize {
        self.uploads.load(Ordering::SeqCst)
    }

    /// Routes the request and answers it.
    pub fn handle(&self, request: Request<'_>) -> Response {
        let route = route(&request.method, &request.path, &request.query);
        if route == Route::NotFound
            && self.demo
            && let Some(page) = crate::app::demo::page(&request.method, &request.path)
        {
            return page;
        }
        let params = request.params();
        let mut identifier = None;
        let mut callback = None;
        let result = match route {
            Route::Upload if self.takes_uploads => self.upload(request, &params, &mut identifier),
            Route::Upload | Route::NotFound => Err(Error::not_found("not found")),
            Route::MethodNotAllowed(allow) => {
                return error_response(&Error::new(405, "method not allowed"), None)
                    .with_header("Allow", allow);
            }
            Route::Status | Route::Clear => {
                match params
                    .iter()
                    .find(|(n, _)| n == "callback")
                    .map(|(_, v)| v.as_str())
                {
                    Some(name) if !valid_callback(name) => {
                        Err(Error::bad_request("invalid callback name"))
                    }
                    name => {
                        callback = name;
                        self.query(route, &request, &params, callback, &mut identifier)
                    }
                }
            }
        };
        let mut response = result.unwrap_or_else(|e| error_response(&e, callback));
        if response.identifier.is_none() {
            response.identifier = identifier;
        }
        response
    }

    fn query(
        &self,
        route: Route,
        request: &Request<'_>,
        params: &[(String, String)],
        callback: Option<&str>,
        shown: &mut Option<String>,
    ) -> Result<Response> {
        *shown = identifier_text(request, params).map(str::to_owned);
        let text = shown
            .as_deref()
            .ok_or_else(|| Error::bad_request("the X-Progress-ID identifier is missing"))?;
        let id = self.pool.verify_identifier(text)?;
        let json = if route == Route::Status {
            let status = self.pool.access_upload_bucket(&id).status()?;
            serde_json::to_string(&status)
        } else {
            self.pool.clear_upload_bucket(&id)?;
            serde_json::to_string(&serde_json::json!({"success": true}))
        }
        .map_err(|e| Error::internal(format!("cannot encode the answer: {e}")))?;
        Ok(match callback {
            Some(name) => jsonp(200, name, &json),
            None => Response::new(200, "application/json", json.into_bytes()),
        })
    }

    fn upload(
        &self,
        request: Request<'_>,
        params: &[(String, String)],
        shown: &mut Option<String>,
    ) -> Result<Response> {
        let content_type = request.header("Content-Type").unwrap_or("");
        let boundary = multipart::boundary(content_type)?;
        let id = match identifier_text(&request, params) {
            Some(text) => {
                *shown = Some(text.to_owned());
                self.pool.verify_identifier(text)?
            }
            None => {
                let id = self.pool.create_identifier()?;
                *shown = Some(self.pool.format_identifier(&id));
                id
            }
        };
        let size = request.content_length;
        if let (Some(max), Some(length)) = (self.limits.max_size, size)
            && length > max
        {
            let err = Error::too_large(format!(
                "upload of {length} bytes is larger than the limit of {max} bytes"
            ));
            return Err(self.refuse(&id, size, err));
        }
        let _slot = self.take_slot()?;
        let mut upload = self.pool.begin_upload(&id, size)?;
        let html = request.header("Accept").is_some_and(prefers_html);
        match intercept::receive(&mut upload, request.body, &boundary, self.limits) {
            Ok(()) => {
                let received = upload.status().received.unwrap_or(0);
                let description = upload.finish()?;
                let mut response = if html {
                    let json = serde_json::to_string(&description)
                        .map_err(|e| Error::internal(format!("cannot encode the answer: {e}")))?;
                    html_reply(&self.pool.format_identifier(&id), &json)
                } else {
                    Response::json(201, &description)
                };
                response.received = received;
                Ok(response)
            }
            Err(e) => {
                let received = upload.status().received.unwrap_or(0);
                upload.fail(&e);
                let mut response = error_response(&e, None);
                response.received = received;
                Ok(response)
            }
        }
    }

    /// Records why an upload was refused before it started, then returns
    /// the error to answer with.
    fn refuse(&self, id: &Identifier, size: Option<u64>, err: Error) -> Error {
        match self.pool.record_failure(id, size, &err) {
            // Another writer has the bucket: that is the answer to give.
            Err(conflict) if conflict.status() == 409 => conflict,
            _ => err,
        }
    }

    fn take_slot(&self) -> Result<Slot<'_>> {
        let taken = self.uploads.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(&self.uploads);
        if taken >= self.max_uploads {
            return Err(Error::new(
                503,
                format!(
                    "too many uploads in progress (at most {}); try again shortly",
                    self.max_uploads
                ),
            ));
        }
        Ok(slot)
    }
}

/// One upload in progress; gives its place back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The identifier sent with the request: the query parameter, else the header.
fn identifier_text<'r>(
    request: &'r Request<'_>,
    params: &'r [(String, String)],
) -> Option<&'r str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(PROGRESS_ID))
        .map(|(_, v)| v.as_str())
        .or_else(|| request.header(PROGRESS_ID))
}

/// The answer for an error: its JSON (or JSONP) body with its status.
pub fn error_response(err: &Error, callback: Option<&str>) -> Response {
    let mut response = match callback {
        Some(name) => jsonp(err.status(), name, &err.to_json().to_string()),
        None => Response::json(err.status(), &err.to_json()),
    };
    if err.status() == 503 {
        response = response.with_header("Retry-After", "5");
    }
    response
}

/// `/**/NAME(json);`: the comment and `nosniff` defend against the Rosetta
/// Flash class of attacks (CVE-2014-4671).
fn jsonp(status: u16, name: &str, json: &str) -> Response {
    let body = format!("/**/{name}({json});").into_bytes();
    Response::new(status, "application/javascript", body)
        .with_header("X-Content-Type-Options", "nosniff")
}

/// The original's iframe transport: the description in data attributes.
fn html_reply(identifier: &str, json: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Upload complete</title></head>\n\
         <body data-upload-identifier=\"{}\" data-upload-info=\"{}\"><p>Upload complete.</p></body></html>\n",
        escape_html(identifier),
        escape_html(json)
    );
    Response::new(201, "text/html; charset=utf-8", body.into_bytes())
}
