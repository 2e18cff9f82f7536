//! The CGI front end (RFC 3875): one request per process, read from the
//! environment and stdin, answered on stdout. The translation between CGI
//! meta-variables and the core's models lives here, as pure functions, and
//! serves FastCGI too, whose `PARAMS` are the same variables.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::app::{Outcome, render::render, route_request};
use crate::front::signal;
use crate::handoff::Service;
use crate::model::error::{Error, Result};
use crate::model::http::{Request, Response, percent_decode, reason};
use crate::pool::resumable::STOP_POLL;

/// Everything of a request but its body, as CGI meta-variables give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `REQUEST_METHOD`, upper case.
    pub method: String,
    /// `SCRIPT_NAME` + `PATH_INFO`.
    pub path: String,
    /// `QUERY_STRING`.
    pub query: String,
    /// `CONTENT_TYPE`, `CONTENT_LENGTH` and every `HTTP_*`, as headers.
    pub headers: Vec<(String, String)>,
    /// `CONTENT_LENGTH`, when given.
    pub content_length: Option<u64>,
}

impl Head {
    /// The core's request, with `body` as its body.
    pub fn into_request(self, body: &mut dyn Read) -> Request<'_> {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            content_length: self.content_length,
            body,
            interrupt: None,
        }
    }
}

/// Reads a request's head from CGI meta-variables (RFC 3875 section 4.1).
/// Routing uses `SCRIPT_NAME` + `PATH_INFO`, so the program answers both
/// mapped at `/upload` and as `/cgi-bin/fileupload/upload`.
///
/// ```
/// use fileupload::front::cgi::head;
/// let vars = [
///     ("REQUEST_METHOD", "POST"),
///     ("SCRIPT_NAME", "/cgi-bin/fileupload"),
///     ("PATH_INFO", "/upload"),
///     ("QUERY_STRING", "X-Progress-ID=a"),
///     ("CONTENT_TYPE", "multipart/form-data; boundary=x"),
///     ("CONTENT_LENGTH", "42"),
///     ("HTTP_X_PROGRESS_ID", "b"),
/// ];
/// let head = head(vars.iter().map(|(n, v)| (n.to_string(), v.to_string()))).unwrap();
/// assert_eq!(head.path, "/cgi-bin/fileupload/upload");
/// assert_eq!(head.content_length, Some(42));
/// assert!(head.headers.contains(&("X-Progress-Id".into(), "b".into())));
/// ```
pub fn head(vars: impl IntoIterator<Item = (String, String)>) -> Result<Head> {
    let mut method = None;
    let mut script = String::new();
    let mut path_info = String::new();
    let mut query = String::new();
    let mut headers = Vec::new();
    let mut content_length = None;
    for (name, value) in vars {
        match name.as_str() {
            "REQUEST_METHOD" => method = Some(value.to_ascii_uppercase()),
            "SCRIPT_NAME" => script = value,
            "PATH_INFO" => path_info = value,
            "QUERY_STRING" => query = value,
            "CONTENT_TYPE" if !value.is_empty() => headers.push(("Content-Type".into(), value)),
            // Some servers set it empty for a request without a body.
            "CONTENT_LENGTH" if !value.trim().is_empty() => {
                let length = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| Error::bad_request(format!("invalid CONTENT_LENGTH {value:?}")))?;
                content_length = Some(length);
                headers.push(("Content-Length".into(), length.to_string()));
            }
            _ => {
                // HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH must not
                // shadow the variables the server vouches for.
                if let Some(header) = name.strip_prefix("HTTP_")
                    && header != "CONTENT_TYPE"
                    && header != "CONTENT_LENGTH"
                {
                    headers.push((header_name(header), value));
                }
            }
        }
    }
    let method = method
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::bad_request("not a CGI request: REQUEST_METHOD is not set"))?;
    Ok(Head {
        method,
        path: script + &path_info,
        query,
        headers,
        content_length,
    })
}

/// `X_PROGRESS_ID` → `X-Progress-Id`.
fn header_name(meta: &str) -> String {
    meta.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether the command line is what a web server gives a CGI script that
/// is the binary itself: RFC 3875 section 4.4 passes the words of a query
/// without `=` as arguments, and nothing otherwise.
///
/// ```
/// use fileupload::front::cgi::is_script_invocation;
/// assert!(is_script_invocation(&[], Some("X-Progress-ID=a&status")));
/// assert!(is_script_invocation(&["a b".into(), "c".into()], Some("a%20b+c")));
/// assert!(!is_script_invocation(&["status".into(), "x".into()], Some("")));
/// ```
pub fn is_script_invocation(args: &[OsString], query: Option<&str>) -> bool {
    let query = query.unwrap_or("");
    let words: Vec<String> = if query.is_empty() || query.contains('=') {
        Vec::new()
    } else {
        query.split('+').map(percent_decode).collect()
    };
    args.len() == words.len()
        && args
            .iter()
            .zip(&words)
            .all(|(arg, word)| arg.as_bytes() == word.as_bytes())
}

/// A response as a CGI program writes it: a `Status:` line, the headers, a
/// blank line, the body. FastCGI's `STDOUT` stream carries the same.
///
/// ```
/// use fileupload::{front::cgi::encode_response, model::http::{HeaderValue, Response}};
/// let json = HeaderValue::from_static("application/json");
/// let out = encode_response(&Response::new(201, json, b"{}".to_vec()));
/// assert!(out.starts_with(b"Status: 201 Created\r\nContent-Type: application/json\r\n"));
/// assert!(out.ends_with(b"Content-Length: 2\r\n\r\n{}"));
/// ```
pub fn encode_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(response.body.len() + 256);
    out.extend_from_slice(
        format!(
            "Status: {} {}\r\n",
            response.status,
            reason(response.status)
        )
        .as_bytes(),
    );
    for (name, value) in &response.headers {
        // The length is ours to state; a relayed one may be stale.
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("Status") {
            continue;
        }
        // A header must never break the framing: drop line ends.
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        out.extend_from_slice(format!("{}: {}\r\n", clean(name), clean(value)).as_bytes());
    }
    if crate::model::http::without_content(response.status) {
        out.extend_from_slice(b"\r\n");
        return out;
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    out
}

/// Answers the one request of this process: the head from the
/// environment, the body from stdin (at most `CONTENT_LENGTH` bytes, as
/// the RFC asks), the answer on stdout.
pub fn run(service: &Service) -> io::Result<()> {
    signal::install_interrupting();
    let vars = std::env::vars_os().map(|(n, v)| {
        (
            n.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    let limit = match head(vars) {
        Ok(head) => {
            let limit = head.content_length.unwrap_or(u64::MAX);
            let woken = AtomicBool::new(false);
            let wake = || woken.store(true, Ordering::SeqCst);
            let mut body = WakeableStdin::new(&woken)?.take(limit);
            let route = route_request(&head.method, &head.path, &head.query, &head.headers);
            let mut request = head.into_request(&mut body);
            request.interrupt = Some(&wake);
            answer(&render(service.handle(route, request)))?;
            // Asked to stop while the client was silent: what is left of
            // the body may never come, and the answer is out.
            if woken.load(Ordering::SeqCst) {
                0
            } else {
                body.limit()
            }
        }
        Err(e) => {
            answer(&render(Outcome::refused(e)))?;
            0
        }
    };
    if signal::stop_requested() {
        return Ok(());
    }
    // A server still writing the body must be able to finish: fcgiwrap
    // turns an answer given before the body was read (a 413 judged on
    // CONTENT_LENGTH) into a 502 when it meets a closed pipe. The answer
    // is already out; the rest of the body is read and dropped.
    let _ = io::copy(&mut io::stdin().lock().take(limit), &mut io::sink());
    Ok(())
}

/// The body on standard input, read so that another thread can wake a
/// read waiting on a silent client ([`Request::interrupt`]), as the core
/// does when another request takes over the tus upload this one writes: a
/// web server's pipe cannot be shut down as a socket can, so each read
/// waits with poll(2) in slices of [`STOP_POLL`] and looks at `woken` in
/// between. A web server ending the process (SIGTERM: its client went
/// away) stops the read too, so that what arrived is saved. Unbuffered (a second descriptor of stdin, not `io::Stdin`), so
/// that no byte of the body waits in a buffer that poll cannot see.
struct WakeableStdin<'w> {
    file: std::fs::File,
    woken: &'w AtomicBool,
}

impl<'w> WakeableStdin<'w> {
    fn new(woken: &'w AtomicBool) -> io::Result<WakeableStdin<'w>> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(WakeableStdin {
            file: std::fs::File::from(fd),
            woken,
        })
    }
}

impl Read for WakeableStdin<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = libc::c_int::try_from(STOP_POLL.as_millis()).unwrap_or(libc::c_int::MAX);
        loop {
            // Woken by the core, or ended by the web server (SIGTERM,
            // which also cuts poll short: see signal::install_interrupting).
            if self.woken.load(Ordering::SeqCst) || signal::stop_requested() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "asked to stop reading the body",
                ));
            }
            let mut ready = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one `pollfd`, alive for the call, and its count 1.
            match unsafe { libc::poll(&mut ready, 1, wait) } {
                0 => {}
                // Readable, at its end, or failed: the read says which.
                n if n > 0 => return self.file.read(buf),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// Answers 500 when the program cannot start (a bad setting, an unusable
/// pool directory): the client gets the JSON error every failure gets, and
/// the details, which may name server paths, go only to the error log.
pub fn answer_startup_failure() {
    let err =
        Error::internal("the upload service is misconfigured; see the web server's error log");
    // Nothing more can be done when even this cannot be written.
    let _ = answer(&render(Outcome::refused(err)));
}

fn answer(response: &Response) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(&encode_response(response))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn script_mapped_at_upload() {
        let h = head(vars(&[
            ("REQUEST_METHOD", "get"),
            ("SCRIPT_NAME", "/upload"),
            ("PATH_INFO", ""),
            ("QUERY_STRING", "X-Progress-ID=a&status"),
        ]))
        .unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/upload");
        assert_eq!(h.query, "X-Progress-ID=a&status");
        assert_eq!(h.content_length, None);
        assert!(h.headers.is_empty());
    }

    #[test]
    fn headers_from_meta_variables() {
        let h = head(vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", ""),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_CONTENT_TYPE", "evil/x"),
            ("HTTP_ACCEPT", "text/html"),
            ("HTTP_X_FORWARDED_FOR", "1.2.3.4"),
            ("SERVER_NAME", "x"),
        ]))
        .unwrap();
        assert_eq!(h.content_length, None);
        assert_eq!(
            h.headers,
            vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Accept".into(), "text/html".into()),
                ("X-Forwarded-For".into(), "1.2.3.4".into()),
            ]
        );
    }

    #[test]
    fn refused_meta_variables() {
        assert_eq!(head(vars(&[])).unwrap_err().status(), 400);
        let e = head(vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "-1"),
        ]))
        .unwrap_err();
        assert_eq!(e.status(), 400);
        let e = head(vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "1x"),
        ]))
        .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn isindex_arguments() {
        assert!(is_script_invocation(&[], None));
        assert!(!is_script_invocation(&["cgi".into()], None));
        assert!(is_script_invocation(&["x".into()], Some("x")));
    }
}
