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
//! Either way the application's answer is the client's answer. With no
//! application the description itself is the answer, as the core gives it.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::app::{App, PROGRESS_ID, Route, error_response, route};
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::status::State;

/// The most bytes of an application's answer relayed to the client.
const MAX_ANSWER: u64 = 256 * 1024 * 1024;
/// How long an application may take to connect and to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Headers of a connection, not of a message: never relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

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

/// An HTTP application at a URL, reached with `ureq`.
#[derive(Debug)]
pub struct Backend {
    url: String,
    agent: ureq::Agent,
}

impl Backend {
    /// A backend at `url` (`http://…`).
    pub fn new(url: &str) -> std::result::Result<Backend, String> {
        if !url.starts_with("http://") {
            return Err(format!("--backend {url}: only http:// URLs are supported"));
        }
        url.parse::<ureq::http::Uri>()
            .map_err(|e| format!("--backend {url}: {e}"))?;
        let config = ureq::Agent::config_builder()
            // The application's answer, whatever its status, is relayed.
            .http_status_as_error(false)
            // Under CGI, HTTP_PROXY is the client's `Proxy:` header
            // (httpoxy, CVE-2016-5385): never take a proxy from the
            // environment.
            .proxy(None)
            // A redirect is for the browser to follow, not for us.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(ANSWER_TIMEOUT))
            .build();
        Ok(Backend {
            url: url.to_owned(),
            agent: config.into(),
        })
    }

    fn post(&self, headers: &[(String, String)], body: impl ureq::AsSendBody) -> Result<Response> {
        let mut request = self.agent.post(&self.url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let answer = request
            .send(body)
            .map_err(|e| unreachable_app(&self.url, &e))?;
        let status = answer.status().as_u16();
        let relayed: Vec<(String, String)> = answer
            .headers()
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = answer
            .into_body()
            .into_with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| unreachable_app(&self.url, &e))?;
        let mut response = Response::new(status, "", body);
        response.headers = relayed;
        Ok(response)
    }
}

/// The client learns that the application failed; where it is and why
/// go only to the log.
fn unreachable_app(url: &str, e: &dyn std::fmt::Display) -> Error {
    eprintln!("fileupload: the application at {url} failed: {e}");
    Error::new(502, "the application cannot be reached")
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
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Answers a request: through the core, then the application.
    pub fn handle(&self, request: Request<'_>) -> Response {
        let Some(application) = &self.application else {
            return self.app.handle(request);
        };
        let route = route(&request.method, &request.path, &request.query);
        let unchanged = match route {
            Route::Upload => !self.takes_uploads,
            Route::NotFound | Route::MethodNotAllowed(_) => {
                matches!(application, Application::Exec { .. })
            }
            Route::Status | Route::Clear => false,
        };
        if unchanged {
            return pass_unchanged(application, request)
                .unwrap_or_else(|e| error_response(&e, None));
        }
        let forwarded = forwarded_headers(&request.headers);
        let response = self.app.handle(request);
        if route != Route::Upload || response.status != 201 {
            return response;
        }
        let mut answer = self
            .hand_over(application, &response, &forwarded)
            .unwrap_or_else(|e| error_response(&e, None));
        answer.identifier = response.identifier;
        answer.received = response.received;
        answer
    }

    /// Hands a finished upload's description to the application. On
    /// failure the upload stays `done` in the pool, for a retry or `gc`.
    fn hand_over(
        &self,
        application: &Application,
        response: &Response,
        forwarded: &[(String, String)],
    ) -> Result<Response> {
        let pool = self.app.pool();
        let shown = response
            .identifier
            .as_deref()
            .ok_or_else(|| Error::internal("the upload has no identifier"))?;
        let id = pool.verify_identifier(shown)?;
        let description = pool.access_upload_bucket(&id).description()?;
        if description.state != State::Done {
            return Err(Error::new(
                410,
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
                run_program(program, args, &env, &mut json.as_slice())
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
        Application::Exec { program, args } => run_program(program, args, &[], request.body),
        Application::Backend(backend) => {
            let mut headers: Vec<(String, String)> = request
                .headers
                .iter()
                .filter(|(n, _)| !HOP_BY_HOP.contains(&n.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            if let Some(length) = request.content_length {
                headers.push(("Content-Length".into(), length.to_string()));
            }
            backend.post(&headers, ureq::SendBody::from_reader(request.body))
        }
    }
}

/// Runs a CGI program with `env` added to this process's environment and
/// `stdin` as its input; its output, read as a CGI answer, is the answer.
fn run_program(
    program: &OsString,
    args: &[OsString],
    env: &[(&str, String)],
    stdin: &mut dyn Read,
) -> Result<Response> {
    let failed = |e: &dyn std::fmt::Display| {
        eprintln!(
            "fileupload: the application {} failed: {e}",
            program.to_string_lossy()
        );
        Error::new(502, "the application failed")
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| failed(&e))?;
    let (Some(mut input), Some(mut output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(failed(&"no pipes to it"));
    };
    // Its output is read while its input is written: a program that
    // answers before it has read everything must not block us, nor we it.
    let read = thread::scope(|scope| {
        let reader = thread::Builder::new()
            .name("exec-output".into())
            .spawn_scoped(scope, move || {
                let mut out = Vec::new();
                output
                    .by_ref()
                    .take(MAX_ANSWER)
                    .read_to_end(&mut out)
                    .map(|_| out)
            })?;
        // A program that stops reading early closes the pipe: not an error.
        let _ = io::copy(stdin, &mut input);
        drop(input);
        reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("reading its answer failed")))
    });
    if read.is_err() {
        // It may be blocked writing to a pipe nobody reads any more.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| failed(&e))?;
    let out = read.map_err(|e| failed(&e))?;
    if out.is_empty() && !status.success() {
        return Err(failed(&status));
    }
    crate::cgi::parse_response(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn program_answer_and_failures() {
        let sh = OsString::from("/bin/sh");
        let arg = |s: &str| vec![OsString::from("-c"), OsString::from(s)];
        let r = run_program(
            &sh,
            &arg("printf 'Status: 200 OK\\nContent-Type: text/plain\\n\\n%s' \"$X_T\"; cat"),
            &[("X_T", "env:".into())],
            &mut &b"body"[..],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"env:body");
        // Answering without reading a large input must not deadlock.
        let big = vec![b'x'; 4 << 20];
        let r = run_program(
            &sh,
            &arg("printf 'Content-Type: text/plain\\n\\nearly'"),
            &[],
            &mut big.as_slice(),
        )
        .unwrap();
        assert_eq!(r.body, b"early");
        let e = run_program(&sh, &arg("exit 3"), &[], &mut &b""[..]).unwrap_err();
        assert_eq!(e.status(), 502);
        let e = run_program(&"/nonexistent/x".into(), &[], &[], &mut &b""[..]).unwrap_err();
        assert_eq!(e.status(), 502);
    }

    #[test]
    fn what_goes_to_the_program() {
        use crate::identifier::Signer;
        use crate::intercept::Limits;
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
            service.handle(Request {
                method: method.into(),
                path: path.into(),
                query: query.into(),
                headers: Vec::new(),
                content_length: Some(body.len() as u64),
                body: &mut body,
            })
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

    #[test]
    fn backend_urls() {
        assert!(Backend::new("http://127.0.0.1:1/x").is_ok());
        assert!(Backend::new("https://example.invalid/").is_err());
        assert!(Backend::new("ftp://x").is_err());
    }
}
