//! The FastCGI responder: the record layer ([`record`]) over sockets, one
//! connection per worker thread, each request translated with the CGI
//! front end's [`crate::front::cgi::head`] (its `PARAMS` are CGI meta-variables)
//! and answered by the same [`Service`] as every other front end.
//!
//! A malformed or truncated record closes its connection with a log line;
//! the process and every other connection carry on.

pub mod record;

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use record::{Decoder, ProtocolStatus, Record};
use socket2::Socket;

use super::driver::{self, Driver, Front, Tracker, UploadWorkers, Workers};
use super::listen::{LISTENSOCK_FILENO, Listener, ReadWaker, Shut};
use crate::app::{Outcome, Route, render::render, route_request};
use crate::front::cgi;
use crate::handoff::Service;
use crate::log;

/// Bytes read from a connection at a time.
const READ_SIZE: usize = 64 * 1024;
/// The most bytes of `PARAMS` one request may send.
const MAX_PARAMS: usize = 1024 * 1024;

/// Serves FastCGI until SIGINT or SIGTERM on `listen` (`HOST:PORT`,
/// `unix:PATH`, `fd:N`), or on the socket inherited as file descriptor 0.
pub fn serve(service: Service, listen: Option<&str>, workers: &Workers) -> Result<(), String> {
    let listener = match listen {
        Some(listen) => Listener::bind(listen)?,
        None => Listener::bind(&format!("fd:{LISTENSOCK_FILENO}")).map_err(|_| {
            "no --listen, and file descriptor 0 is not a listening socket (as spawn-fcgi or a web server would leave it)"
                .to_string()
        })?,
    };
    crate::log::say!("FastCGI responder listening on {}", listener.name());
    let max = workers.max_connections;
    driver::run(listener, service, workers, FastCgi { max })
}

/// The FastCGI protocol, for the driver.
struct FastCgi {
    /// `FCGI_MAX_CONNS` and `FCGI_MAX_REQS`.
    max: usize,
}

impl Front for FastCgi {
    fn serve(&self, driver: &Arc<Driver>, socket: Socket, tracker: Tracker) {
        let conn = Connection::new(socket, self.max);
        if let Err(why) = serve_connection(conn, &driver.service, &driver.uploads, Some(&tracker)) {
            crate::log::say!("FastCGI connection closed: {why}");
        }
    }

    /// Nothing: FastCGI has no answer without a request, so the
    /// connection is only closed.
    fn refusal(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// Why a connection ended early: said once in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Broken {
    /// The web server hung up inside a request's PARAMS.
    ClosedMidRequest,
    /// The web server hung up inside a request's body.
    ClosedMidBody,
    /// The connection ended inside a record.
    Truncated,
    /// A record that breaks the protocol.
    Malformed(String),
    /// PARAMS that do not decode.
    MalformedParams(String),
    /// PARAMS over [`MAX_PARAMS`].
    ParamsTooLarge,
    /// `BEGIN_REQUEST` twice for the request in progress.
    BeganTwice(u16),
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// Reading failed.
    Read(String),
    /// Writing failed.
    Write(String),
    /// The upload worker holding the connection was lost.
    Lost,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::ClosedMidRequest => {
                f.write_str("the web server closed the connection mid-request")
            }
            Broken::ClosedMidBody => f.write_str("the web server closed the connection mid-body"),
            Broken::Truncated => f.write_str("truncated record: the connection ended inside it"),
            Broken::Malformed(e) => write!(f, "malformed record: {e}"),
            Broken::MalformedParams(e) => write!(f, "malformed PARAMS: {e}"),
            Broken::ParamsTooLarge => write!(f, "PARAMS larger than {MAX_PARAMS} bytes"),
            Broken::BeganTwice(id) => write!(f, "request {id} began twice"),
            Broken::IdleTimeout => f.write_str("idle timeout: the web server sent nothing"),
            Broken::Read(e) => write!(f, "cannot read from the web server: {e}"),
            Broken::Write(e) => write!(f, "cannot write to the web server: {e}"),
            Broken::Lost => f.write_str("the upload worker was lost"),
        }
    }
}

/// Serves requests until the web server is done with the connection.
/// Uploads are answered on an upload worker, lent the connection for the
/// time of the request.
fn serve_connection<S>(
    mut conn: Connection<S>,
    service: &Arc<Service>,
    uploads: &UploadWorkers,
    tracker: Option<&Tracker>,
) -> Result<(), Broken>
where
    S: Read + Write + Shut + Send + 'static,
{
    loop {
        if let Some(t) = tracker {
            t.waiting();
        }
        let Some((id, keep_conn)) = conn.begin()? else {
            return Ok(());
        };
        if let Some(t) = tracker {
            t.busy();
        }
        let Some(params) = conn.params(id)? else {
            // Aborted before it began: answered already.
            if keep_conn {
                continue;
            }
            return Ok(());
        };
        // The route is decided here, once: an upload goes to a worker.
        let head = cgi::head(params).map(|h| {
            let route = route_request(&h.method, &h.path, &h.query, &h.headers);
            (h, route)
        });
        let upload = matches!(head, Ok((_, route)) if route.is_upload());
        let next = if upload {
            let service = service.clone();
            let (back, next) = uploads
                .run(conn, move |c| c.answer(&service, id, keep_conn, head))
                .ok_or(Broken::Lost)?;
            conn = back;
            next?
        } else {
            conn.answer(service, id, keep_conn, head)?
        };
        if !next {
            return Ok(());
        }
    }
}

/// One connection to the web server, one request at a time on it
/// (`FCGI_MPXS_CONNS` is 0).
struct Connection<S> {
    stream: S,
    decoder: Decoder,
    buf: Vec<u8>,
    /// A record decoded ahead by [`Connection::buffered_stdin`], not yet
    /// handed out by [`Connection::next`].
    held: Option<Record>,
    /// `FCGI_MAX_CONNS` and `FCGI_MAX_REQS`.
    max: usize,
}

/// Where the body of the request in progress stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Open,
    Ended,
    Aborted,
    Broken(Broken),
}

impl<S: Read + Write + Shut> Connection<S> {
    fn new(stream: S, max: usize) -> Self {
        Connection {
            stream,
            decoder: Decoder::default(),
            buf: vec![0; READ_SIZE],
            held: None,
            max,
        }
    }

    /// Answers one request whose PARAMS are read; whether the connection
    /// goes on.
    fn answer(
        &mut self,
        service: &Service,
        id: u16,
        keep_conn: bool,
        head: crate::Result<(cgi::Head, Route)>,
    ) -> Result<bool, Broken> {
        let started = Instant::now();
        let route = head.as_ref().map_or(Route::NotFound, |(_, route)| *route);
        let waker = ReadWaker::new(route, &self.stream);
        let wake = || waker.wake();
        let mut body = StdinReader {
            conn: self,
            id,
            pending: Vec::new(),
            pos: 0,
            state: Body::Open,
        };
        let (method, path, outcome) = match head {
            Ok((head, route)) => {
                let (method, path) = (head.method.clone(), head.path.clone());
                (
                    method,
                    path,
                    service.handle(route, {
                        let mut request = head.into_request(&mut body);
                        request.interrupt = waker.can_wake().then_some(&wake as &(dyn Fn() + Sync));
                        request
                    }),
                )
            }
            Err(e) => ("-".into(), "-".into(), Outcome::refused(e)),
        };
        log::request(&method, &path, &outcome, started.elapsed());
        let response = render(outcome);
        let state = body.state;
        let mut out = Vec::new();
        match &state {
            Body::Broken(why) => return Err(why.clone()),
            // The web server has given up: it wants no answer.
            Body::Aborted => {}
            Body::Open | Body::Ended => {
                record::stream(
                    record::STDOUT,
                    id,
                    &cgi::encode_response(&response),
                    &mut out,
                );
                record::end_stream(record::STDOUT, id, &mut out);
            }
        }
        record::end_request(id, 0, ProtocolStatus::RequestComplete, &mut out);
        self.write(&out)?;
        // A web server still sending the body must be able to finish
        // (nginx turns an early answer, a 413 judged on CONTENT_LENGTH,
        // into a 502 otherwise), and body records left over would be
        // taken for the next request's: read them off.
        if !keep_conn {
            // Half-close: the server sees the end of our answer and
            // hangs up, while what it still sends is read, not met
            // with a reset that could cost it the answer.
            if state == Body::Open {
                self.stream.shut_write();
                self.drain(id);
            }
            return Ok(false);
        }
        // A kept connection goes on once the body is read off; the
        // server may hang up first instead, as nginx does.
        Ok(state != Body::Open || self.drain(id))
    }

    /// Waits for `BEGIN_REQUEST`; `None` when the connection ends.
    fn begin(&mut self) -> Result<Option<(u16, bool)>, Broken> {
        loop {
            match self.next()? {
                None => return Ok(None),
                Some(Record::BeginRequest {
                    id,
                    role,
                    keep_conn,
                }) => {
                    if role == record::RESPONDER {
                        return Ok(Some((id, keep_conn)));
                    }
                    let mut out = Vec::new();
                    record::end_request(id, 0, ProtocolStatus::UnknownRole, &mut out);
                    self.write(&out)?;
                    if !keep_conn {
                        return Ok(None);
                    }
                }
                // Leftovers of a request already answered.
                Some(_) => {}
            }
        }
    }

    /// Reads the request's `PARAMS` stream; `None` when it was aborted.
    fn params(&mut self, id: u16) -> Result<Option<Vec<(String, String)>>, Broken> {
        let mut bytes = Vec::new();
        loop {
            match self.next()? {
                None => return Err(Broken::ClosedMidRequest),
                Some(Record::Params { id: i, data }) if i == id => {
                    if data.is_empty() {
                        break;
                    }
                    if bytes.len() + data.len() > MAX_PARAMS {
                        return Err(Broken::ParamsTooLarge);
                    }
                    bytes.extend_from_slice(&data);
                }
                Some(Record::AbortRequest { id: i }) if i == id => {
                    let mut out = Vec::new();
                    record::end_request(id, 0, ProtocolStatus::RequestComplete, &mut out);
                    self.write(&out)?;
                    return Ok(None);
                }
                Some(other) => self.refuse_other(id, other)?,
            }
        }
        let pairs =
            record::decode_pairs(&bytes).map_err(|e| Broken::MalformedParams(e.to_string()))?;
        Ok(Some(
            pairs
                .into_iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect(),
        ))
    }

    /// A record that is not for the request in progress: a second request
    /// on this connection is refused, anything else of another request
    /// ignored.
    fn refuse_other(&mut self, current: u16, record: Record) -> Result<(), Broken> {
        if let Record::BeginRequest { id, .. } = record {
            if id == current {
                return Err(Broken::BeganTwice(id));
            }
            let mut out = Vec::new();
            record::end_request(id, 0, ProtocolStatus::CantMpxConn, &mut out);
            self.write(&out)?;
        }
        Ok(())
    }

    /// Reads off the rest of a request body the answer did not need, to
    /// its end (the idle timeout bounds a server that stops sending);
    /// `true` when it ended and the connection can serve again.
    fn drain(&mut self, id: u16) -> bool {
        loop {
            match self.next() {
                // The server may hang up once it has the answer.
                Ok(None) | Err(_) => return false,
                Ok(Some(Record::Stdin { id: i, data })) if i == id => {
                    if data.is_empty() {
                        return true;
                    }
                }
                Ok(Some(Record::AbortRequest { id: i })) if i == id => return true,
                Ok(Some(other)) => {
                    if self.refuse_other(id, other).is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// The next application record, reading as needed and answering
    /// management records on the way; `None` at a clean end of input.
    fn next(&mut self) -> Result<Option<Record>, Broken> {
        loop {
            let decoded = match self.held.take() {
                Some(record) => Ok(Some(record)),
                None => self.decoder.next_record(),
            };
            match decoded {
                Err(e) => return Err(Broken::Malformed(e.to_string())),
                Ok(Some(Record::GetValues { names })) => self.get_values(&names)?,
                Ok(Some(Record::UnknownManagement { kind })) => {
                    let mut out = Vec::new();
                    record::unknown_type(kind, &mut out);
                    self.write(&out)?;
                }
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => {
                    let n = loop {
                        match self.stream.read(&mut self.buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(read_failure(&e)),
                        }
                    };
                    if n == 0 {
                        return if self.decoder.is_empty() {
                            Ok(None)
                        } else {
                            Err(Broken::Truncated)
                        };
                    }
                    self.decoder.push(&self.buf[..n]);
                }
            }
        }
    }

    fn get_values(&mut self, names: &[Vec<u8>]) -> Result<(), Broken> {
        let mut pairs: Vec<(&[u8], String)> = Vec::new();
        for name in names {
            let value = match name.as_slice() {
                b"FCGI_MAX_CONNS" | b"FCGI_MAX_REQS" => self.max.to_string(),
                b"FCGI_MPXS_CONNS" => "0".into(),
                // The specification asks to leave out unknown names.
                _ => continue,
            };
            pairs.push((name, value));
        }
        let mut out = Vec::new();
        record::get_values_result(&pairs, &mut out);
        self.write(&out)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| Broken::Write(e.to_string()))
    }
}

fn read_failure(e: &io::Error) -> Broken {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Broken::IdleTimeout,
        _ => Broken::Read(e.to_string()),
    }
}

/// The request body, pulled record by record as the core reads it, so an
/// upload streams to disk as the web server passes it on.
struct StdinReader<'c, S> {
    conn: &'c mut Connection<S>,
    id: u16,
    pending: Vec<u8>,
    pos: usize,
    state: Body,
}

impl<S: Read + Write + Shut> Connection<S> {
    /// The data of the request's next `STDIN` record when it is already
    /// here, decoded from what was read: never waits for the socket. Any
    /// other record is held for [`Connection::next`]; a malformed one is
    /// left for it to report.
    fn buffered_stdin(&mut self, id: u16) -> Option<Vec<u8>> {
        if self.held.is_some() {
            return None;
        }
        match self.decoder.next_record() {
            Ok(Some(Record::Stdin { id: i, data })) if i == id && !data.is_empty() => Some(data),
            Ok(Some(other)) => {
                self.held = Some(other);
                None
            }
            Ok(None) | Err(_) => None,
        }
    }
}

impl<S: Read + Write + Shut> Read for StdinReader<'_, S> {
    /// Fills `buf` with as many of the `STDIN` records already received as
    /// fit: web servers send the body in records of 32 KiB or less (nginx),
    /// and the parser works best on the larger blocks the daemon reads.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            if self.pos < self.pending.len() {
                let n = (buf.len() - filled).min(self.pending.len() - self.pos);
                buf[filled..filled + n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                filled += n;
            }
            if filled > 0 {
                if filled < buf.len()
                    && let Some(data) = self.conn.buffered_stdin(self.id)
                {
                    self.pending = data;
                    self.pos = 0;
                    continue;
                }
                return Ok(filled);
            }
            match &self.state {
                Body::Open => {}
                Body::Ended => return Ok(0),
                Body::Aborted => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the web server aborted the request",
                    ));
                }
                Body::Broken(why) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        why.to_string(),
                    ));
                }
            }
            self.state = match self.conn.next() {
                Ok(Some(Record::Stdin { id, data })) if id == self.id => {
                    if data.is_empty() {
                        Body::Ended
                    } else {
                        self.pending = data;
                        self.pos = 0;
                        Body::Open
                    }
                }
                Ok(Some(Record::AbortRequest { id })) if id == self.id => Body::Aborted,
                Ok(Some(other)) => match self.conn.refuse_other(self.id, other) {
                    Ok(()) => Body::Open,
                    Err(why) => Body::Broken(why),
                },
                Ok(None) => Body::Broken(Broken::ClosedMidBody),
                Err(Broken::IdleTimeout) => {
                    // Reported as a timeout, so the upload says 408.
                    self.state = Body::Broken(Broken::IdleTimeout);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        Broken::IdleTimeout.to_string(),
                    ));
                }
                Err(why) => Body::Broken(why),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::app::intercept::Limits;
    use crate::model::identifier::Signer;
    use crate::pool::Pool;
    use record::{encode_pair, encode_record};

    /// A scripted web server: reads come from `input`, writes collect.
    struct Script {
        input: io::Cursor<Vec<u8>>,
        /// Shared, so it can be read after the connection is gone.
        output: Arc<std::sync::Mutex<Vec<u8>>>,
        /// The most bytes one read gives.
        chunk: usize,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk);
            self.input.read(&mut buf[..n])
        }
    }

    impl Shut for Script {
        fn shut_write(&mut self) {}
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn service(dir: &std::path::Path) -> Service {
        let pool = Pool::open(dir, Signer::new(None)).unwrap();
        Service::new(App::new(pool, Limits::default(), true, 2), true, None)
    }

    fn begin(id: u16, role: u16, keep: bool, out: &mut Vec<u8>) {
        let r = role.to_be_bytes();
        encode_record(
            record::BEGIN_REQUEST,
            id,
            &[r[0], r[1], u8::from(keep), 0, 0, 0, 0, 0],
            out,
        );
    }

    fn params(id: u16, vars: &[(&str, &str)], out: &mut Vec<u8>) {
        let mut body = Vec::new();
        for (n, v) in vars {
            encode_pair(n.as_bytes(), v.as_bytes(), &mut body);
        }
        // Split across two records, as servers may.
        let (a, b) = body.split_at(body.len() / 2);
        encode_record(record::PARAMS, id, a, out);
        encode_record(record::PARAMS, id, b, out);
        encode_record(record::PARAMS, id, &[], out);
    }

    /// The PARAMS of an upload of [`UPLOAD`] under `ident`.
    fn upload_params(id: u16, ident: &str, length: Option<usize>, out: &mut Vec<u8>) {
        let query = format!("X-Progress-ID={ident}");
        let length = length.map(|n| n.to_string());
        let mut vars = vec![
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/upload"),
            ("QUERY_STRING", query.as_str()),
            ("CONTENT_TYPE", "multipart/form-data; boundary=XX"),
        ];
        if let Some(length) = &length {
            vars.push(("CONTENT_LENGTH", length));
        }
        params(id, &vars, out);
    }

    /// A record written back: type, request id, content.
    type Written = (u8, u16, Vec<u8>);

    /// Runs a connection over `input`; the records written back, and how
    /// the connection ended.
    fn run(dir: &std::path::Path, input: Vec<u8>) -> (Vec<Written>, Result<(), Broken>) {
        let output: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let script = Script {
            input: io::Cursor::new(input),
            output: output.clone(),
            // Small reads, so records arrive split.
            chunk: 7,
        };
        let conn = Connection::new(script, 10);
        let service = Arc::new(service(dir));
        let result = serve_connection(conn, &service, &UploadWorkers::none(), None);
        let mut records = Vec::new();
        let out = output.lock().unwrap();
        let mut at = 0;
        while at + 8 <= out.len() {
            let len = usize::from(u16::from_be_bytes([out[at + 4], out[at + 5]]));
            let pad = usize::from(out[at + 6]);
            let id = u16::from_be_bytes([out[at + 2], out[at + 3]]);
            records.push((out[at + 1], id, out[at + 8..at + 8 + len].to_vec()));
            at += 8 + len + pad;
        }
        assert_eq!(at, out.len(), "whole records written");
        (records, result)
    }

    /// Runs a connection over `input` that must end cleanly.
    fn run_clean(dir: &std::path::Path, input: Vec<u8>) -> Vec<Written> {
        let (records, result) = run(dir, input);
        assert_eq!(result, Ok(()));
        records
    }

    /// A request `id` that begins an upload as `ident` and sends `sent`
    /// of its body.
    fn upload_begun(id: u16, ident: &str, length: Option<usize>, sent: &[u8]) -> Vec<u8> {
        let mut input = Vec::new();
        begin(id, record::RESPONDER, false, &mut input);
        upload_params(id, ident, length, &mut input);
        record::stream(record::STDIN, id, sent, &mut input);
        input
    }

    fn stdout_of(records: &[Written], id: u16) -> String {
        let bytes: Vec<u8> = records
            .iter()
            .filter(|(k, i, _)| *k == record::STDOUT && *i == id)
            .flat_map(|(_, _, d)| d.clone())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fcgi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn stdin_reads_take_every_record_already_received() {
        let mut input = Vec::new();
        for part in [&b"abc"[..], b"defg", b"hi"] {
            encode_record(record::STDIN, 1, part, &mut input);
        }
        // A management record between: answered, and the body goes on.
        encode_record(record::GET_VALUES, 0, &[], &mut input);
        encode_record(record::STDIN, 1, b"jk", &mut input);
        encode_record(record::STDIN, 1, &[], &mut input);
        let script = Script {
            input: io::Cursor::new(input),
            output: Arc::default(),
            chunk: 4096,
        };
        let mut conn = Connection::new(script, 10);
        let mut body = StdinReader {
            conn: &mut conn,
            id: 1,
            pending: Vec::new(),
            pos: 0,
            state: Body::Open,
        };
        let mut read = |size: usize| {
            let mut buf = vec![0; size];
            let n = body.read(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        // Records are joined up to the buffer's size, and never past a
        // record of another kind.
        assert_eq!(read(5), "abcde");
        assert_eq!(read(64), "fghi");
        assert_eq!(read(64), "jk");
        assert_eq!(read(64), "");
        let written = conn.stream.output.lock().unwrap();
        assert_eq!(written.get(1), Some(&record::GET_VALUES_RESULT));
    }

    const UPLOAD: &str = "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XX--\r\n";

    #[test]
    fn upload_then_status_on_a_kept_connection() {
        let dir = tempdir("keep");
        let mut input = Vec::new();
        begin(1, record::RESPONDER, true, &mut input);
        upload_params(1, "f1", Some(UPLOAD.len()), &mut input);
        let (a, b) = UPLOAD.as_bytes().split_at(10);
        record::stream(record::STDIN, 1, a, &mut input);
        record::stream(record::STDIN, 1, b, &mut input);
        record::end_stream(record::STDIN, 1, &mut input);
        begin(1, record::RESPONDER, false, &mut input);
        params(
            1,
            &[
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", "/fcgi"),
                ("PATH_INFO", "/upload/status"),
                ("QUERY_STRING", "X-Progress-ID=f1"),
            ],
            &mut input,
        );
        record::end_stream(record::STDIN, 1, &mut input);
        let records = run_clean(&dir, input);
        let ends: Vec<_> = records
            .iter()
            .filter(|(k, _, _)| *k == record::END_REQUEST)
            .collect();
        assert_eq!(ends.len(), 2);
        assert_eq!(ends[0].2, [0, 0, 0, 0, 0, 0, 0, 0]);
        let out = stdout_of(&records, 1);
        assert!(out.starts_with("Status: 201 Created\r\n"), "{out}");
        assert_eq!(out.matches("\"state\":\"done\"").count(), 2, "{out}");
        assert!(out.contains("Status: 200 OK\r\n"), "{out}");
        assert_eq!(std::fs::read(dir.join("f1/0")).unwrap(), b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abort_mid_upload_leaves_error_and_no_file() {
        let dir = tempdir("abort");
        let mut input = upload_begun(3, "f2", None, &UPLOAD.as_bytes()[..60]);
        encode_record(record::ABORT_REQUEST, 3, &[], &mut input);
        let records = run_clean(&dir, input);
        assert!(stdout_of(&records, 3).is_empty());
        assert_eq!(records.last().unwrap().0, record::END_REQUEST);
        let status = std::fs::read_to_string(dir.join("f2/status.json")).unwrap();
        assert!(status.contains("\"state\":\"error\""), "{status}");
        let names: Vec<_> = std::fs::read_dir(dir.join("f2"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n == "lock" || n == "status.json"),
            "{names:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn roles_values_and_unknown_types() {
        let dir = tempdir("roles");
        let mut input = Vec::new();
        let mut names = Vec::new();
        for n in [
            "FCGI_MAX_CONNS",
            "FCGI_MAX_REQS",
            "FCGI_MPXS_CONNS",
            "OTHER",
        ] {
            encode_pair(n.as_bytes(), b"", &mut names);
        }
        encode_record(record::GET_VALUES, 0, &names, &mut input);
        encode_record(99, 0, &[], &mut input);
        begin(5, 2, true, &mut input); // the authorizer role
        begin(6, 3, false, &mut input); // the filter role
        let records = run_clean(&dir, input);
        let kinds: Vec<_> = records.iter().map(|(k, i, _)| (*k, *i)).collect();
        assert_eq!(
            kinds,
            [
                (record::GET_VALUES_RESULT, 0),
                (record::UNKNOWN_TYPE, 0),
                (record::END_REQUEST, 5),
                (record::END_REQUEST, 6)
            ]
        );
        let values = record::decode_pairs(&records[0].2).unwrap();
        assert_eq!(
            values,
            [
                (b"FCGI_MAX_CONNS".to_vec(), b"10".to_vec()),
                (b"FCGI_MAX_REQS".to_vec(), b"10".to_vec()),
                (b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec())
            ]
        );
        assert_eq!(records[1].2[0], 99);
        assert_eq!(records[2].2[4], ProtocolStatus::UnknownRole as u8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_request_on_the_connection_is_refused() {
        let dir = tempdir("mpx");
        let mut input = upload_begun(1, "f3", Some(UPLOAD.len()), &UPLOAD.as_bytes()[..20]);
        begin(2, record::RESPONDER, false, &mut input);
        record::stream(record::STDIN, 1, &UPLOAD.as_bytes()[20..], &mut input);
        record::end_stream(record::STDIN, 1, &mut input);
        let records = run_clean(&dir, input);
        let refused = records
            .iter()
            .find(|(k, i, _)| *k == record::END_REQUEST && *i == 2)
            .unwrap();
        assert_eq!(refused.2[4], ProtocolStatus::CantMpxConn as u8);
        assert!(stdout_of(&records, 1).starts_with("Status: 201 Created"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_and_truncated_input_closes_the_connection() {
        let dir = tempdir("bad");
        let mut ok = Vec::new();
        begin(1, record::RESPONDER, false, &mut ok);
        params(
            1,
            &[("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/x")],
            &mut ok,
        );
        record::end_stream(record::STDIN, 1, &mut ok);
        for cut in 1..ok.len() {
            let (_, result) = run(&dir, ok[..cut].to_vec());
            if cut < 16 {
                // Inside the first record: truncated; at 16 a clean end.
                assert!(result.is_err(), "cut {cut}");
            }
        }
        let (records, result) = run(&dir, ok.clone());
        assert_eq!(result, Ok(()));
        assert!(stdout_of(&records, 1).starts_with("Status: 404"));
        let mut garbage = ok[..16].to_vec();
        garbage.extend_from_slice(&[9; 20]);
        let (_, result) = run(&dir, garbage);
        assert!(result.unwrap_err().to_string().contains("version"));
        // Broken pairs in PARAMS.
        let mut bad = Vec::new();
        begin(1, record::RESPONDER, false, &mut bad);
        encode_record(record::PARAMS, 1, &[0x80, 1], &mut bad);
        encode_record(record::PARAMS, 1, &[], &mut bad);
        let (_, result) = run(&dir, bad);
        assert!(result.unwrap_err().to_string().contains("PARAMS"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
