//! The middleware: what every front end (daemon, CGI, FastCGI) serves. It
//! puts the core ([`App`]) in front of an optional application and, after a
//! successful upload, hands that application the upload's description
//! (with each file's `path`) instead of the file:
//!
//! - [`Application::Exec`] (CGI only) runs a CGI program with the
//!   description on its stdin, and passes it every request that is not an
//!   upload, a status or a clear, unchanged;
//! - [`Application::Backend`] `POST`s the description to a URL.
//!
//! Either way the application's answer is the client's answer, but for a
//! tus upload: the request that completes it hands the application the
//! description once, and the tus client still gets its tus answer (the
//! application's is only logged when it fails). With no
//! application the description itself is the answer, as the core gives it.

pub(crate) mod backend;
pub(crate) mod exec;

use std::ffi::OsString;

pub use backend::Backend;

use crate::app::{Answer, App, Outcome, PROGRESS_ID, Route};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::http::{HeaderName, HeaderValue, Request, Response};
use crate::model::status::State;

/// The most bytes of an application's answer relayed to the client.
pub(crate) const MAX_ANSWER: u64 = 256 * 1024 * 1024;

/// The application an upload is handed to.
#[derive(Debug)]
pub enum Application {
    /// A CGI program run with this process's environment: only for the
    /// CGI front end, where that environment is the request's.
    Exec {
        /// The program.
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// An HTTP application the description is `POST`ed to.
    Backend(Backend),
}

/// The core and, optionally, the application behind it.
#[derive(Debug)]
pub struct Service {
    app: App,
    takes_uploads: bool,
    application: Option<Application>,
}

impl Service {
    /// Serves `app`; with `takes_uploads` false (`--upload-url`) uploads
    /// go to the application unchanged.
    pub fn new(app: App, takes_uploads: bool, application: Option<Application>) -> Service {
        Service {
            app,
            takes_uploads,
            application,
        }
    }

    /// The core.
    pub(crate) fn app(&self) -> &App {
        &self.app
    }

    /// Answers a request on `route` (see [`crate::app::route`]): through
    /// the core, then the application.
    pub fn handle(&self, route: Route, request: Request<'_>) -> Outcome {
        let Some(application) = &self.application else {
            return self.app.handle(route, request);
        };
        let route = self.app.settle_preflight(route, &request);
        let unchanged = match route {
            Route::Upload | Route::Tus(_) => !self.takes_uploads,
            Route::NotFound | Route::MethodNotAllowed(_) => {
                matches!(application, Application::Exec { .. })
            }
            // Ours when served, the application's path otherwise.
            Route::Metrics => {
                !self.app.serves_metrics() && matches!(application, Application::Exec { .. })
            }
            Route::Status | Route::Clear | Route::Healthz | Route::Preflight => false,
        };
        if unchanged {
            let mut outcome = Outcome::new(route);
            outcome.answer = pass_unchanged(application, request).map(Answer::Application);
            return outcome;
        }
        let forwarded = forwarded_headers(&request.headers);
        let mut outcome = self.app.handle(route, request);
        match &outcome.answer {
            Ok(Answer::Uploaded { .. }) => {
                outcome.answer = self
                    .hand_over(application, outcome.identifier.as_deref(), &forwarded)
                    .map(Answer::Application);
            }
            // A tus client gets the tus answer: the application's answer
            // (or failure) cannot reach it, so it is only logged. The
            // upload stays done in the pool either way.
            Ok(Answer::Tus(answer)) if answer.completed() => {
                let shown = outcome.identifier.as_deref();
                match self.hand_over(application, shown, &forwarded) {
                    Ok(response) if response.status < 400 => {}
                    Ok(response) => crate::log::say!(
                        "the application answered {} to the description of tus upload {}",
                        response.status,
                        shown.unwrap_or("-")
                    ),
                    Err(e) => crate::log::say!(
                        "the description of tus upload {} was not handed over: {e}",
                        shown.unwrap_or("-")
                    ),
                }
            }
            _ => {}
        }
        outcome
    }

    /// Hands a finished upload's description to the application. On
    /// failure the upload stays `done` in the pool, for a retry or `gc`.
    fn hand_over(
        &self,
        application: &Application,
        shown: Option<&str>,
        forwarded: &[(String, String)],
    ) -> Result<Response> {
        let pool = self.app.pool();
        let shown = shown.ok_or_else(|| Error::internal("the upload has no identifier"))?;
        let id = pool.verify_identifier(shown)?;
        // Read again, with each file's path: the description the client
        // gets has none.
        let description = pool.access_upload_bucket(&id).description()?;
        if description.state != State::Done {
            return Err(Error::new(
                ErrorKind::Gone,
                "the upload was cleared before it could be handed over",
            ));
        }
        let json = serde_json::to_vec(&description)
            .map_err(|e| Error::internal(format!("cannot encode the description: {e}")))?;
        match application {
            Application::Exec { program, args } => {
                let env = [
                    ("CONTENT_TYPE", "application/json".to_owned()),
                    ("CONTENT_LENGTH", json.len().to_string()),
                ];
                exec::run_program(program, args, &env, &mut json.as_slice())
            }
            Application::Backend(backend) => {
                let mut headers = forwarded.to_vec();
                headers.push(("Content-Type".into(), "application/json".into()));
                headers.push((PROGRESS_ID.into(), shown.to_owned()));
                backend.post(&headers, json.as_slice())
            }
        }
    }
}

/// An application's header, typed to be written to a client; `None`, and
/// a line in the log, for one that could break the response's head (a
/// name that is not a token, a value with CR, LF or NUL).
fn relayed_header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    match (HeaderName::new(name), HeaderValue::new(value)) {
        (Ok(name), Ok(value)) => Some((name, value)),
        (Err(why), _) | (_, Err(why)) => {
            crate::log::say!(
                "dropped a header of the application's answer: {why}: {:?}",
                name
            );
            None
        }
    }
}

/// The request headers an application sees with a description: those that
/// say who the client is.
fn forwarded_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n == "cookie" || n == "authorization" || n.starts_with("x-forwarded-")
        })
        .cloned()
        .collect()
}

/// Gives a request to the application as it came, body and all.
fn pass_unchanged(application: &Application, request: Request<'_>) -> Result<Response> {
    match application {
        // The environment is the request's already.
        Application::Exec { program, args } => exec::run_program(program, args, &[], request.body),
        Application::Backend(backend) => backend.pass(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_could_split_are_dropped() {
        assert!(relayed_header("X-A", "b\r\nSet-Cookie: x").is_none());
        assert!(relayed_header("X-A", "b\0").is_none());
        assert!(relayed_header("X A", "b").is_none());
        let (name, value) = relayed_header("X-A", "b c").unwrap();
        assert_eq!((&*name, &*value), ("X-A", "b c"));
    }

    #[test]
    fn who_the_client_is() {
        let headers = vec![
            ("Cookie".to_owned(), "a=1".to_owned()),
            ("X-Forwarded-For".to_owned(), "1.2.3.4".to_owned()),
            ("authorization".to_owned(), "Basic x".to_owned()),
            ("Accept".to_owned(), "*/*".to_owned()),
            ("X-Forwardedfoo".to_owned(), "no".to_owned()),
        ];
        let names: Vec<_> = forwarded_headers(&headers)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["Cookie", "X-Forwarded-For", "authorization"]);
    }

    #[test]
    fn what_goes_to_the_program() {
        use crate::app::intercept::Limits;
        use crate::model::identifier::Signer;
        use crate::pool::Pool;
        let dir = std::env::temp_dir().join(format!("forward-{}", std::process::id()));
        let pool = Pool::open(&dir, Signer::new(None)).unwrap();
        let program = Application::Exec {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "printf 'Content-Type: text/plain\\n\\napp:'; cat".into(),
            ],
        };
        let service = Service::new(
            App::new(pool, Limits::default(), true, 1),
            true,
            Some(program),
        );
        let ask = |method: &str, path: &str, query: &str, body: &[u8]| {
            let mut body = body;
            let route = crate::app::route(method, path, query);
            crate::app::render::render(service.handle(
                route,
                Request {
                    method: method.into(),
                    path: path.into(),
                    query: query.into(),
                    headers: Vec::new(),
                    content_length: Some(body.len() as u64),
                    body: &mut body,
                    interrupt: None,
                },
            ))
        };
        let r = ask("POST", "/app/form", "", b"x=1");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"app:x=1"[..]));
        let r = ask("GET", "/app/upload", "", b"");
        assert_eq!(r.body, b"app:");
        let r = ask("GET", "/app/upload/status", "X-Progress-ID=a", b"");
        assert_eq!(r.body, br#"{"state":"starting"}"#);
        let r = ask("POST", "/app/upload", "", b"x=1");
        assert_eq!(r.status, 415, "a failed upload is the core's answer");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
