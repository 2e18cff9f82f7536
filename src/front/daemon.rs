//! The HTTP daemon: `tiny_http` with a thread per connection, uploads
//! handed to workers of their own, translating its requests to the core's
//! and back.

use std::io::{self, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tiny_http::{Header, ListenAddr, Server};

use crate::app::{Route, render::render, route};
use crate::front::driver::{self, UploadWorkers, Workers};
use crate::handoff::Service;
use crate::log;
use crate::model::http::Request;

/// How the daemon listens and how many it serves at once.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT`, or `unix:PATH`.
    pub listen: String,
    /// Connections open at once: at the limit the oldest idle one is
    /// closed to admit a new one (see `vendor/tiny_http/PATCHED.md`).
    pub max_connections: usize,
    /// Uploads at once, timeouts, grace.
    pub workers: Workers,
}

/// Serves until SIGINT or SIGTERM (see [`server::run`]).
///
/// Each connection has a thread of its own (at most `max_connections`),
/// and a request is answered on it as soon as its head is read: status
/// and clear never wait for a worker, and cost no hop between threads.
/// Uploads alone go to `max_uploads` workers of lower priority (see
/// [`UploadWorkers`]).
pub fn serve(service: Service, options: &Options) -> Result<(), String> {
    let service = Arc::new(service);
    let uploads = {
        let service = service.clone();
        UploadWorkers::start(options.workers.max_uploads, move |(route, request)| {
            answer(&service, route, request)
        })?
    };
    let handler = {
        let service = service.clone();
        move |request: tiny_http::Request| {
            let route = route_of(&request);
            if route == Route::Upload {
                if let Some((route, request)) = uploads.hand_over((route, request)) {
                    answer(&service, route, request)
                }
            } else {
                answer(&service, route, request)
            }
        }
    };
    let (server, control) = bind(options, Arc::new(handler))?;
    eprintln!(
        "fileupload: listening on {}",
        describe(&server.server_addr())
    );
    let watched = service.clone();
    // Requests do not reach `recv` (the handler answers them); the
    // failure of the listener does.
    let watch = move |failed: &AtomicBool| {
        while driver::running(failed) {
            match server.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(request)) => answer(&watched, route_of(&request), request),
                Ok(None) => {}
                Err(e) => return driver::listener_failed(failed, &e),
            }
        }
    };
    // Stop accepting: new connections are refused from here on.
    // SAFETY: shutdown(2) on a socket we own; it only changes its state.
    let stop = || unsafe {
        libc::shutdown(control.as_raw_fd(), libc::SHUT_RDWR);
    };
    driver::run(&service, &options.workers, 1, watch, stop)
}

/// The request's route, decided once: uploads go to a worker of their own.
/// Without allocating but for a method sent in lower case.
fn route_of(request: &tiny_http::Request) -> Route {
    let url = request.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let method = request.method().as_str();
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        route(&method.to_ascii_uppercase(), path, query)
    } else {
        route(method, path, query)
    }
}

/// Reads the body only when the core asks, so that `100 Continue` is sent
/// only for a request the core has accepted.
struct LazyBody<'a>(&'a mut tiny_http::Request);

impl Read for LazyBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.as_reader().read(buf)
    }
}

fn answer(app: &Service, route: Route, mut request: tiny_http::Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_ascii_uppercase();
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let headers = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let content_length = request.body_length().map(|n| n as u64);
    let outcome = app.handle(
        route,
        Request {
            method: method.clone(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            content_length,
            body: &mut LazyBody(&mut request),
        },
    );
    log::request(&method, path, &outcome, started.elapsed());
    let response = render(outcome);
    let mut reply = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in &response.headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            reply.add_header(header);
        }
    }
    // The client may have gone; there is no one left to tell.
    let _ = request.respond(reply);
}

type Handler = Arc<dyn Fn(tiny_http::Request) + Send + Sync>;

fn bind(options: &Options, handler: Handler) -> Result<(Server, OwnedFd), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot listen on {}: {e}", options.listen);
    let (server, control) = if let Some(path) = options.listen.strip_prefix("unix:") {
        // A socket file left by an earlier run would make bind fail.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            std::fs::remove_file(path).map_err(|e| fail(&e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| fail(&e))?;
        set_timeouts(listener.as_raw_fd(), options.workers.idle_timeout).map_err(|e| fail(&e))?;
        let control = OwnedFd::from(listener.try_clone().map_err(|e| fail(&e))?);
        (
            Server::from_listener_handled(listener, options.max_connections, handler),
            control,
        )
    } else {
        let listener = TcpListener::bind(&options.listen).map_err(|e| fail(&e))?;
        set_timeouts(listener.as_raw_fd(), options.workers.idle_timeout).map_err(|e| fail(&e))?;
        let control = OwnedFd::from(listener.try_clone().map_err(|e| fail(&e))?);
        (
            Server::from_listener_handled(listener, options.max_connections, handler),
            control,
        )
    };
    Ok((server.map_err(|e| fail(&e))?, control))
}

/// Sets receive and send timeouts on the listening socket: Linux gives
/// them to every accepted socket, and `tiny_http` has no setting of its own.
fn set_timeouts(fd: i32, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: a valid socket and a timeval of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn describe(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::IP(a) => format!("http://{a}"),
        ListenAddr::Unix(a) => match a.as_pathname() {
            Some(p) => format!("unix:{}", p.display()),
            None => "unix:(unnamed)".into(),
        },
    }
}
