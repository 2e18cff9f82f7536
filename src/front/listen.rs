//! Listening sockets for the long-running front ends: TCP, a unix socket,
//! or a listening socket the process inherited (`fd:N`; file descriptor 0
//! is how spawn-fcgi, lighttpd and systemd's `StandardInput=socket` hand
//! one over). Both protocols use the same [`Listener`], and every accepted
//! connection is a `socket2::Socket`, whatever its family.

use std::io;
use std::net::TcpListener;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use socket2::{Domain, Socket};

use crate::app::{Route, Tus};
#[cfg(doc)]
use crate::model::http::Request;

/// The file descriptor a web server hands a FastCGI responder its
/// listening socket on (`FCGI_LISTENSOCK_FILENO`).
pub const LISTENSOCK_FILENO: RawFd = 0;

/// A listening socket.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    name: String,
    /// TCP (not a unix socket): its connections get `TCP_NODELAY`.
    tcp: bool,
}

/// Whether file descriptor 0 is a listening socket, as a web server that
/// spawns a responder (`spawn-fcgi`, lighttpd, `mod_fcgid`) leaves it.
pub fn inherited_listener() -> bool {
    is_listening(LISTENSOCK_FILENO)
}

fn is_listening(fd: RawFd) -> bool {
    // SO_ACCEPTCONN fails on anything that is not a socket.
    if fd < 0 {
        return false;
    }
    // SAFETY: the descriptor is only borrowed for the one query below;
    // on a closed descriptor the query fails and nothing is touched.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&borrowed)
        .is_listener()
        .unwrap_or(false)
}

impl Listener {
    /// Listens on `HOST:PORT`, `unix:PATH` or `fd:N` (an inherited
    /// listening socket).
    pub fn bind(listen: &str) -> Result<Listener, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot listen on {listen}: {e}");
        if let Some(fd) = listen.strip_prefix("fd:") {
            let fd: RawFd = fd.parse().map_err(|_| fail(&"not a file descriptor"))?;
            return Listener::inherited(fd).map_err(|e| fail(&e));
        }
        let socket = if let Some(path) = listen.strip_prefix("unix:") {
            // A socket file left by an earlier run would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                std::fs::remove_file(path).map_err(|e| fail(&e))?;
            }
            Socket::from(OwnedFd::from(
                UnixListener::bind(path).map_err(|e| fail(&e))?,
            ))
        } else {
            Socket::from(OwnedFd::from(
                TcpListener::bind(listen).map_err(|e| fail(&e))?,
            ))
        };
        Ok(Listener::new(socket))
    }

    fn new(socket: Socket) -> Listener {
        let name = describe(&socket);
        let tcp = socket.domain().is_ok_and(|d| d != Domain::UNIX);
        Listener { socket, name, tcp }
    }

    /// Takes over the listening socket inherited as `fd`.
    fn inherited(fd: RawFd) -> Result<Listener, String> {
        if !is_listening(fd) {
            return Err(format!(
                "file descriptor {fd} is not a listening socket (as spawn-fcgi, a web server or systemd would leave it)"
            ));
        }
        // SAFETY: `fd` is an open listening socket (checked above) that
        // nothing else in this process uses; we take it over for good.
        let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Listener::new(socket))
    }

    /// The next connection, with `timeout` for its reads and writes: a
    /// peer silent that long fails the blocked call, which the front end
    /// turns into 408 or a close.
    pub fn accept(&self, timeout: Duration) -> io::Result<Socket> {
        let (socket, _) = self.socket.accept()?;
        let configured = socket
            .set_read_timeout(Some(timeout))
            .and_then(|()| socket.set_write_timeout(Some(timeout)))
            // Answers are written whole: waiting for more to send only
            // delays them.
            .and_then(|()| match self.tcp {
                true => socket.set_tcp_nodelay(true),
                false => Ok(()),
            });
        // A connection that cannot be set up (its peer gone already) is
        // that connection's failure, not the listener's.
        configured.map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
        Ok(socket)
    }

    /// Stops accepting: new connections are refused from here on, and a
    /// thread blocked in [`Listener::accept`] wakes with an error.
    pub fn stop(&self) {
        // Errors are moot: the process is stopping.
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Where it listens, for the log.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn describe(socket: &Socket) -> String {
    match socket.local_addr() {
        Ok(addr) => match (addr.as_socket(), addr.as_pathname()) {
            (Some(a), _) => a.to_string(),
            (None, Some(p)) => format!("unix:{}", p.display()),
            (None, None) => "unix:(unnamed)".into(),
        },
        Err(_) => "?".into(),
    }
}

/// Whether an `accept` error concerns one connection or a passing
/// shortage, after which accepting goes on; the pause lets descriptors or
/// memory come back instead of spinning.
pub fn accept_error_is_transient(e: &io::Error) -> Option<Duration> {
    use io::ErrorKind::*;
    match e.kind() {
        Interrupted | WouldBlock | ConnectionAborted | ConnectionReset | TimedOut => {
            Some(Duration::ZERO)
        }
        OutOfMemory => Some(Duration::from_millis(10)),
        // EMFILE, ENFILE, ENOBUFS, ENOMEM have no kind of their own.
        _ if matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        ) =>
        {
            Some(Duration::from_millis(10))
        }
        _ => None,
    }
}

/// A stream whose sending side can be closed on its own: both protocols
/// half-close before they read off what a peer still sends.
pub trait Shut {
    /// Shuts down the sending side; errors are moot, the connection ends.
    fn shut_write(&mut self);

    /// A second handle on the connection, to wake a blocked read; `None`
    /// where there is none (a test's scripted stream).
    fn handle(&self) -> Option<Socket> {
        None
    }
}

impl Shut for Socket {
    fn shut_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }

    fn handle(&self) -> Option<Socket> {
        self.try_clone().ok()
    }
}

/// Wakes, from another thread, a read blocked on a connection, by shutting
/// down the connection's reading side (the read then ends as at the end of
/// input, and the connection with the request). The core does it when
/// another request takes over the tus upload this request writes, whose
/// client may have gone silent (see [`crate::pool::resumable`]). Made only
/// for the requests that write a tus upload: other requests are never
/// asked to stop.
pub(crate) struct ReadWaker(Option<Socket>);

impl ReadWaker {
    /// The waker of a request on `route` over `conn`.
    pub(crate) fn new(route: Route, conn: &impl Shut) -> ReadWaker {
        ReadWaker(
            matches!(route, Route::Tus(Tus::Patch | Tus::Create))
                .then(|| conn.handle())
                .flatten(),
        )
    }

    /// Whether it can wake the read: what [`Request::interrupt`] is given.
    pub(crate) fn can_wake(&self) -> bool {
        self.0.is_some()
    }

    /// Wakes the read; errors are moot, the connection ends either way.
    pub(crate) fn wake(&self) {
        if let Some(socket) = &self.0 {
            let _ = socket.shutdown(std::net::Shutdown::Read);
        }
    }
}
