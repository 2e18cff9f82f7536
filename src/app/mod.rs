//! The core: one function, [`App::handle`], that answers a routed
//! [`Request`] with a typed [`Outcome`]; [`render::render`] turns that into
//! the [`Response`] every front end writes. Front ends only translate to
//! and from these.

pub mod demo;
pub mod intercept;
pub mod metrics;
pub mod render;
pub(crate) mod tus;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::model::error::{Error, ErrorKind, Result};
use crate::model::http::{HeaderValue, Request, Response, prefers_html, valid_callback};
use crate::model::identifier::Identifier;
use crate::model::multipart;
use crate::model::status::Status;
use crate::pool::Pool;
use intercept::Limits;
use metrics::{Counters, Report};

/// The name of the identifier, as a query parameter and as a header.
pub(crate) const PROGRESS_ID: &str = "X-Progress-ID";

/// What the program serves, and with which limits.
#[derive(Debug)]
pub struct App {
    pool: Pool,
    limits: Limits,
    takes_uploads: bool,
    max_uploads: usize,
    uploads: AtomicUsize,
    demo: bool,
    /// Whether `…/metrics` is served (`--metrics`); counted either way.
    metrics: bool,
    counters: Counters,
    /// The origins a browser page may call the endpoints from
    /// (`--cors-origin`); none by default.
    cors_origins: Vec<HeaderValue>,
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
    /// `GET …/metrics`: the Prometheus text format, with `--metrics`.
    Metrics,
    /// `GET …/healthz`: whether the pool can be written and locked.
    Healthz,
    /// A tus 1.0.0 request (`…/files`, `…/files/ID`), by the method it means.
    Tus(Tus),
    /// A CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) for a route that answers other
    /// origins (see [`Route::answers_other_origins`]); see [`route_request`].
    Preflight,
    /// A known path with a method it does not take; the value is `Allow`.
    MethodNotAllowed(&'static str),
    /// Anything else.
    NotFound,
}

/// A tus request, by the method it means (`X-HTTP-Method-Override` when
/// given, see [`route_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tus {
    /// `OPTIONS …/files` (or `…/files/ID`): what the server supports.
    Options,
    /// `POST …/files`: creation, with a body creation-with-upload.
    Create,
    /// `HEAD …/files/ID`: the offset.
    Head,
    /// `PATCH …/files/ID`: bytes at an offset.
    Patch,
    /// `DELETE …/files/ID`: termination.
    Delete,
}

/// `Allow` on `…/files`.
const ALLOW_FILES: &str = "OPTIONS, POST";
/// `Allow` on `…/files/ID`.
const ALLOW_FILE: &str = "OPTIONS, HEAD, PATCH, DELETE";

impl Route {
    /// Whether the request sends an upload's bytes: it runs on an upload
    /// worker (daemon, FastCGI) and takes an upload slot in the core.
    ///
    /// ```
    /// use fileupload::app::{route, Route};
    /// assert!(route("POST", "/upload", "").is_upload());
    /// assert!(route("PATCH", "/files/a", "").is_upload());
    /// assert!(!route("HEAD", "/files/a", "").is_upload());
    /// ```
    pub fn is_upload(self) -> bool {
        matches!(self, Route::Upload | Route::Tus(Tus::Create | Tus::Patch))
    }

    /// Whether a browser page on a listed origin (`--cors-origin`) may
    /// call the route: what such a page uses (tus, the multipart upload,
    /// status, clear), not the operator's `…/metrics` and `…/healthz`.
    pub fn answers_other_origins(self) -> bool {
        matches!(
            self,
            Route::Upload | Route::Status | Route::Clear | Route::Tus(_) | Route::Preflight
        )
    }
}

/// [`route`] for a request with headers: on the tus paths the method is
/// `X-HTTP-Method-Override` when the request has one (the tus protocol
/// asks for it, for clients behind proxies that pass only GET and POST).
/// Elsewhere the header means nothing.
///
/// An `OPTIONS` with `Origin` and `Access-Control-Request-Method` is a CORS
/// preflight ([`Route::Preflight`]) when it asks for a tus path, or for a
/// method the route of which answers other origins; any other `OPTIONS`
/// on a tus path is tus' own. The core answers a preflight from an origin
/// it does not list as it would the plain `OPTIONS` (see
/// [`App::settle_preflight`]).
///
/// ```
/// use fileupload::app::{route_request, Route, Tus};
/// let h = vec![("X-HTTP-Method-Override".to_owned(), "PATCH".to_owned())];
/// assert_eq!(route_request("POST", "/files/a", "", &h), Route::Tus(Tus::Patch));
/// assert_eq!(route_request("POST", "/upload", "", &h), Route::Upload);
/// let pre = |m: &str| vec![
///     ("Origin".to_owned(), "https://a.example".to_owned()),
///     ("Access-Control-Request-Method".to_owned(), m.to_owned()),
/// ];
/// assert_eq!(route_request("OPTIONS", "/files", "", &pre("POST")), Route::Preflight);
/// assert_eq!(route_request("OPTIONS", "/files", "", &[]), Route::Tus(Tus::Options));
/// assert_eq!(route_request("OPTIONS", "/upload/status", "", &pre("GET")), Route::Preflight);
/// assert_ne!(route_request("OPTIONS", "/metrics", "", &pre("GET")), Route::Preflight);
/// ```
pub fn route_request(method: &str, path: &str, query: &str, headers: &[(String, String)]) -> Route {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if method == "OPTIONS"
        && header("Origin").is_some()
        && let Some(asked) = header("Access-Control-Request-Method")
        && (tus_path(path).is_some() || route(asked, path, query).answers_other_origins())
    {
        return Route::Preflight;
    }
    let method = header("X-HTTP-Method-Override")
        .filter(|_| tus_path(path).is_some())
        .unwrap_or(method);
    route(method, path, query)
}

/// Whether `path` is a tus path: `Some(None)` for `…/files`,
/// `Some(Some(id))` for `…/files/ID` (the ID as it stands in the path).
pub(crate) fn tus_path(path: &str) -> Option<Option<&str>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if ends_with_segments(path, "files") {
        return Some(None);
    }
    let (before, id) = path.rsplit_once('/')?;
    (!id.is_empty() && ends_with_segments(before, "files")).then_some(Some(id))
}

/// Whether `path` ends with the whole segments `end` (`/a/upload` ends
/// with `upload`, `/myupload` does not).
fn ends_with_segments(path: &str, end: &str) -> bool {
    path.strip_suffix(end)
        .is_some_and(|before| before.is_empty() || before.ends_with('/'))
}

/// Routes by the end of the path, so the program answers wherever it is
/// mounted (`/upload`, `/cgi-bin/fileupload/upload`, …). A front end calls
/// it once per request and hands the route to [`App::handle`] (through
/// [`crate::handoff::Service::handle`]); it allocates nothing, so a front
/// end may call it on every request's head before it decides where to
/// answer it.
///
/// ```
/// use fileupload::app::{route, Route};
/// assert_eq!(route("POST", "/cgi-bin/fileupload/upload", ""), Route::Upload);
/// assert_eq!(route("GET", "/upload/status", "X-Progress-ID=a"), Route::Status);
/// assert_eq!(route("GET", "/upload", "X-Progress-ID=a&clear"), Route::Clear);
/// assert_eq!(route("DELETE", "/upload", "X-Progress-ID=a"), Route::Clear);
/// assert_eq!(route("PUT", "/upload", ""), Route::MethodNotAllowed("POST, DELETE"));
/// assert_eq!(route("POST", "/myupload", ""), Route::NotFound);
/// assert_eq!(route("GET", "/cgi-bin/fileupload/metrics", ""), Route::Metrics);
/// assert_eq!(route("HEAD", "/healthz/", ""), Route::Healthz);
/// assert_eq!(route("POST", "/healthz", ""), Route::MethodNotAllowed("GET, HEAD"));
/// assert_eq!(route("GET", "/myhealthz", ""), Route::NotFound);
/// assert_eq!(route("POST", "/app/files", ""), Route::Tus(fileupload::app::Tus::Create));
/// assert_eq!(route("HEAD", "/app/files/ID", ""), Route::Tus(fileupload::app::Tus::Head));
/// ```
pub fn route(method: &str, path: &str, query: &str) -> Route {
    if let Some(id) = tus_path(path) {
        return match (method, id) {
            ("OPTIONS", _) => Route::Tus(Tus::Options),
            ("POST", None) => Route::Tus(Tus::Create),
            ("HEAD", Some(_)) => Route::Tus(Tus::Head),
            ("PATCH", Some(_)) => Route::Tus(Tus::Patch),
            ("DELETE", Some(_)) => Route::Tus(Tus::Delete),
            (_, None) => Route::MethodNotAllowed(ALLOW_FILES),
            (_, Some(_)) => Route::MethodNotAllowed(ALLOW_FILE),
        };
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let is = |end: &str| ends_with_segments(path, end);
    let flag = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
    let read = matches!(method, "GET" | "HEAD");
    for (end, route) in [("metrics", Route::Metrics), ("healthz", Route::Healthz)] {
        if is(end) {
            return if read {
                route
            } else {
                Route::MethodNotAllowed("GET, HEAD")
            };
        }
    }
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

/// What the core made of one request: everything a front end renders
/// (see [`render::render`]) and logs. Nothing in it is HTTP yet.
#[derive(Debug)]
pub struct Outcome {
    /// The route, decided once for the request; `None` when the request
    /// could not even be read (a malformed CGI environment).
    pub route: Option<Route>,
    /// The upload identifier the request was about, as the client sent it
    /// or as it was minted for it.
    pub identifier: Option<String>,
    /// Request body bytes read.
    pub received: u64,
    /// The JSONP callback the answer is wrapped in, once it was found
    /// acceptable (status and clear only).
    pub callback: Option<String>,
    /// The request's `Origin` when it is one of `--cors-origin` and the
    /// route answers other origins: the answer, errors included, then
    /// says so (`Access-Control-Allow-Origin`).
    pub cors_origin: Option<HeaderValue>,
    /// The answer, or the failure to answer with.
    pub answer: Result<Answer>,
}

/// The core's answer to a request, before it is rendered.
#[derive(Debug)]
pub enum Answer {
    /// The status of an upload (`…/upload/status`).
    Status(Status),
    /// The upload was cleared, or there was none (`…/upload/clear`).
    Cleared,
    /// An upload was stored; this is its description, rendered as the
    /// iframe transport's HTML when the client prefers HTML, else as JSON.
    Uploaded {
        /// The description (the upload's status in state `done`).
        description: Status,
        /// Whether the client prefers `text/html` (a browser's form post).
        html: bool,
    },
    /// A page of the demo.
    Page(&'static demo::Page),
    /// The process's counters and the pool's gauges (`…/metrics`).
    Metrics(Box<Report>),
    /// The pool can be written and locked (`…/healthz`).
    Healthy,
    /// A tus request's answer.
    Tus(TusAnswer),
    /// A CORS preflight from a listed origin: 204 with what may be sent.
    Preflight,
    /// The answer of the application behind the core (`--backend`,
    /// `--exec`), relayed as it came, but for headers that fail the check
    /// of [`crate::model::http::HeaderValue`].
    Application(Response),
}

/// The answer to a tus request; [`render::render`] writes its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TusAnswer {
    /// `OPTIONS`: 204 with what the server supports.
    Options {
        /// `Tus-Max-Size`, when there is a limit.
        max_size: Option<u64>,
    },
    /// A creation: 201 with `Location` and the offset reached by a body
    /// sent with it.
    Created {
        /// Where the upload is, relative to the request's path.
        location: String,
        /// Bytes stored.
        offset: u64,
        /// Whether this request completed the upload (its body was all, or
        /// it made a final upload of partial ones).
        completed: bool,
        /// When the upload expires while unfinished (seconds since the
        /// Unix epoch): `Upload-Expires`.
        expires: Option<u64>,
    },
    /// `HEAD`: 200 with the offset, the length and the metadata.
    Info {
        /// Bytes stored.
        offset: u64,
        /// The length, once known.
        length: Option<u64>,
        /// `Upload-Metadata` as the client sent it at creation.
        metadata: Option<String>,
        /// When the upload expires while unfinished: `Upload-Expires`.
        expires: Option<u64>,
        /// `Upload-Concat`: `partial`, or `final;` and the URLs.
        concat: Option<String>,
    },
    /// `PATCH`: 204 with the new offset.
    Patched {
        /// Bytes stored.
        offset: u64,
        /// Whether this request completed the upload.
        completed: bool,
        /// When the upload expires while unfinished: `Upload-Expires`.
        expires: Option<u64>,
    },
    /// `DELETE`: 204.
    Terminated,
}

impl TusAnswer {
    /// Whether the request completed the upload: the application behind
    /// the core is handed its description then, once.
    pub fn completed(&self) -> bool {
        matches!(
            self,
            TusAnswer::Created {
                completed: true,
                ..
            } | TusAnswer::Patched {
                completed: true,
                ..
            }
        )
    }
}

impl Outcome {
    /// The outcome of a request on `route` that has not been answered yet.
    pub(crate) fn new(route: Route) -> Outcome {
        Outcome {
            route: Some(route),
            identifier: None,
            received: 0,
            callback: None,
            cors_origin: None,
            answer: Err(Error::internal("the request was not answered")),
        }
    }

    /// The outcome of a request that could not be read at all.
    pub(crate) fn refused(err: Error) -> Outcome {
        Outcome {
            route: None,
            identifier: None,
            received: 0,
            callback: None,
            cors_origin: None,
            answer: Err(err),
        }
    }

    /// The HTTP status the outcome is rendered with.
    pub fn status(&self) -> u16 {
        match &self.answer {
            Ok(
                Answer::Status(_)
                | Answer::Cleared
                | Answer::Page(_)
                | Answer::Metrics(_)
                | Answer::Healthy,
            ) => 200,
            Ok(Answer::Uploaded { .. }) => 201,
            Ok(Answer::Application(response)) => response.status,
            Ok(Answer::Tus(TusAnswer::Created { .. })) => 201,
            Ok(Answer::Tus(TusAnswer::Info { .. })) => 200,
            Ok(Answer::Tus(_) | Answer::Preflight) => 204,
            Err(e) => e.status(),
        }
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
            metrics: false,
            counters: Counters::default(),
            cors_origins: Vec::new(),
        }
    }

    /// Answers browser pages on these origins (`--cors-origin`, each
    /// checked by [`crate::model::http::parse_origin`]), on the routes
    /// that answer other origins.
    pub fn with_cors_origins(mut self, origins: Vec<HeaderValue>) -> App {
        self.cors_origins = origins;
        self
    }

    /// The listed origin the request comes from: its `Origin` equal, byte
    /// for byte, to one of `--cors-origin`. The value answered is the
    /// listed one, never the client's text.
    fn listed_origin(&self, request: &Request<'_>) -> Option<HeaderValue> {
        // Only HTTP's optional white space is not the origin's.
        let origin = request.header("Origin")?.trim_matches([' ', '\t']);
        self.cors_origins
            .iter()
            .find(|listed| listed.as_str() == origin)
            .cloned()
    }

    /// The route to answer: a preflight from an origin that is not listed
    /// is answered as the plain `OPTIONS` would be (tus' own on a tus
    /// path, 405 elsewhere), without CORS headers, so the browser refuses
    /// the page. The middleware asks before it decides where a request
    /// goes.
    pub fn settle_preflight(&self, route: Route, request: &Request<'_>) -> Route {
        if route == Route::Preflight && self.listed_origin(request).is_none() {
            return self::route(&request.method, &request.path, &request.query);
        }
        route
    }

    /// Also serves `…/metrics` (else 404 there).
    pub fn with_metrics(mut self, metrics: bool) -> App {
        self.metrics = metrics;
        self
    }

    /// Whether `…/metrics` is served.
    pub(crate) fn serves_metrics(&self) -> bool {
        self.metrics
    }

    /// Also serves the demo pages (see [`crate::app::demo`]) at `/`, `/iframe` and `/resumable`.
    pub fn with_demo(mut self, demo: bool) -> App {
        self.demo = demo;
        self
    }

    /// The pool this app serves.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Uploads in progress in this process.
    pub(crate) fn uploads_in_progress(&self) -> usize {
        self.uploads.load(Ordering::SeqCst)
    }

    /// Answers a request on `route`, which the front end decided with
    /// [`route`] from the same request's method, path and query. Every
    /// request answered here is counted here, and nowhere else, for
    /// `…/metrics`.
    pub fn handle(&self, route: Route, request: Request<'_>) -> Outcome {
        let started = Instant::now();
        let route = self.settle_preflight(route, &request);
        // A tus request that sends bytes is an upload too: each PATCH, and
        // a creation with a body, done when its bytes are stored.
        let upload = self.takes_uploads
            && match route {
                Route::Upload | Route::Tus(Tus::Patch) => true,
                Route::Tus(Tus::Create) => tus::sends_body(&request),
                _ => false,
            };
        if upload {
            self.counters.upload_started();
        }
        let outcome = self.answer(route, request);
        self.counters.answered(&outcome, upload, started.elapsed());
        outcome
    }

    fn answer(&self, route: Route, request: Request<'_>) -> Outcome {
        let mut outcome = Outcome::new(route);
        if route == Route::NotFound
            && self.demo
            && let Some(page) = demo::page(&request.method, &request.path)
        {
            outcome.answer = Ok(Answer::Page(page));
            return outcome;
        }
        if route.answers_other_origins() {
            outcome.cors_origin = self.listed_origin(&request);
        }
        let params = request.params();
        outcome.answer = match route {
            Route::Upload if self.takes_uploads => self.upload(request, &params, &mut outcome),
            Route::Tus(tus) if self.takes_uploads => self.tus(tus, request, &mut outcome),
            Route::Upload | Route::Tus(_) | Route::NotFound => Err(Error::not_found("not found")),
            Route::MethodNotAllowed(_) => Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "method not allowed",
            )),
            Route::Status | Route::Clear => self.query(route, &request, &params, &mut outcome),
            Route::Metrics if self.metrics => self.report().map(|r| Answer::Metrics(Box::new(r))),
            Route::Metrics => Err(Error::not_found("not found")),
            Route::Healthz => self.health(),
            Route::Preflight => Ok(Answer::Preflight),
        };
        outcome
    }

    /// The counters as they stand and the pool's gauges, computed now.
    fn report(&self) -> Result<Report> {
        Ok(Report {
            process: self.counters.read(self.uploads_in_progress()),
            pool: self.pool.gauges()?,
        })
    }

    /// Healthy when the pool can be written and locked now; else 503, for
    /// a load balancer to send uploads to other hosts.
    fn health(&self) -> Result<Answer> {
        self.pool.probe().map(|()| Answer::Healthy).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("unhealthy: {}", e.message()),
            )
        })
    }

    fn query(
        &self,
        route: Route,
        request: &Request<'_>,
        params: &[(String, String)],
        outcome: &mut Outcome,
    ) -> Result<Answer> {
        if let Some((_, name)) = params.iter().find(|(n, _)| n == "callback") {
            if !valid_callback(name) {
                return Err(Error::bad_request("invalid callback name"));
            }
            outcome.callback = Some(name.clone());
        }
        outcome.identifier = identifier_text(request, params).map(str::to_owned);
        let text = outcome
            .identifier
            .as_deref()
            .ok_or_else(|| Error::bad_request("the X-Progress-ID identifier is missing"))?;
        let id = self.pool.verify_identifier(text)?;
        if route == Route::Status {
            Ok(Answer::Status(
                self.pool.access_upload_bucket(&id).status()?,
            ))
        } else {
            self.pool.clear_upload_bucket(&id)?;
            Ok(Answer::Cleared)
        }
    }

    fn upload(
        &self,
        request: Request<'_>,
        params: &[(String, String)],
        outcome: &mut Outcome,
    ) -> Result<Answer> {
        let content_type = request.header("Content-Type").unwrap_or("");
        let boundary = multipart::boundary(content_type)?;
        let id = match identifier_text(&request, params) {
            Some(text) => {
                outcome.identifier = Some(text.to_owned());
                self.pool.verify_identifier(text)?
            }
            None => {
                let id = self.pool.create_identifier()?;
                outcome.identifier = Some(self.pool.format_identifier(&id));
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
        let received = intercept::receive(&mut upload, request.body, &boundary, self.limits);
        outcome.received = upload.status().received.unwrap_or(0);
        match received {
            Ok(()) => Ok(Answer::Uploaded {
                description: upload.finish()?,
                html,
            }),
            Err(e) => {
                upload.fail(&e);
                Err(e)
            }
        }
    }

    /// Records why an upload was refused before it started, then returns
    /// the error to answer with.
    fn refuse(&self, id: &Identifier, size: Option<u64>, err: Error) -> Error {
        match self.pool.record_failure(id, size, &err) {
            // Another writer has the bucket: that is the answer to give.
            Err(conflict) if conflict.kind() == ErrorKind::Conflict => conflict,
            _ => err,
        }
    }

    fn take_slot(&self) -> Result<Slot<'_>> {
        let taken = self.uploads.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(&self.uploads);
        if taken >= self.max_uploads {
            return Err(Error::new(
                ErrorKind::Unavailable,
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
