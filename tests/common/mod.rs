//! What the integration tests share: a temporary directory, the built
//! `fileupload` binary run as a daemon on a free loopback port, and the
//! core in memory over a pool of its own.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fileupload::Pool;
use fileupload::app::intercept::Limits;
use fileupload::app::render::render;
use fileupload::app::{App, route};
use fileupload::model::http::{Request, Response};
use fileupload::model::identifier::Signer;
use serde_json::Value;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory named after the test.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "fileupload-test-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A pool directory inside it (not made: the program makes it).
    pub fn pool(&self) -> PathBuf {
        self.0.join("pool")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fileupload serve` on a free loopback port, stopped when dropped.
pub struct Daemon {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pool directory.
    pub pool: PathBuf,
    /// Its log lines, as they come.
    pub log: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Daemon {
    /// Starts the daemon with `args` after `serve`.
    pub fn start(name: &str, args: &[&str]) -> Daemon {
        Daemon::spawn(TempDir::new(name), args)
    }

    /// Kills the daemon as `kill -9` does (SIGKILL: no handler runs, no
    /// file is flushed), then starts the binary again on the same pool
    /// with `args`.
    pub fn restart(mut self, args: &[&str]) -> Daemon {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, TempDir(PathBuf::new()));
        Daemon::spawn(dir, args)
    }

    fn spawn(dir: TempDir, args: &[&str]) -> Daemon {
        let pool = dir.path().join("pool");
        Daemon::start_with(dir, pool, args)
    }

    /// Starts the daemon on the pool directory `pool`, which other
    /// daemons may share, with `args` after `serve`.
    pub fn start_in(name: &str, pool: &Path, args: &[&str]) -> Daemon {
        Daemon::start_with(TempDir::new(name), pool.to_owned(), args)
    }

    fn start_with(dir: TempDir, pool: PathBuf, args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fileupload"))
            .arg("--directory")
            .arg(&pool)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let first = log.recv_timeout(Duration::from_secs(10)).unwrap();
        let addr = first
            .strip_prefix("fileupload: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .parse()
            .unwrap();
        Daemon {
            child,
            addr,
            pool,
            log,
            _dir: dir,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its threads now, from `/proc`.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Its open sockets now, from `/proc`.
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// A new connection, with reads that give up after 10 s.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `request` on a new connection and reads until the daemon
    /// closes it.
    pub fn exchange(&self, request: &[u8]) -> String {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_to_close(&mut s)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the peer sends until it closes (or 10 s of silence).
pub fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no close from the daemon: {e}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP/1.1 answer read off a connection that stays open: the head
/// and the body its `Content-Length` gives. (A buffered reader saves a
/// system call a byte where many answers are read.)
pub fn read_answer(s: &mut impl Read) -> (String, Vec<u8>) {
    read_answer_until_closed(s, true).unwrap()
}

/// [`read_answer`] for a peer that may go away: `None` when the
/// connection ends (or fails) before a whole answer.
pub fn try_read_answer(s: &mut impl Read) -> Option<(String, Vec<u8>)> {
    read_answer_until_closed(s, false)
}

/// Reads one answer; where the connection ends first, panics as
/// [`read_answer`] always has when `strict`, else gives `None`.
fn read_answer_until_closed(s: &mut impl Read, strict: bool) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = match s.read(&mut byte) {
            Ok(n) => n,
            Err(_) if !strict => return None,
            Err(e) => panic!("{e}"),
        };
        if n == 0 && !strict {
            return None;
        }
        assert_eq!(
            n,
            1,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = header(&head, "Content-Length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if !head.starts_with("HTTP/1.1 100 ") {
        match s.read_exact(&mut body) {
            Ok(()) => {}
            Err(_) if !strict => return None,
            Err(e) => panic!("{e}"),
        }
    }
    Some((head, body))
}

/// A field of an answer's head.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Whether the peer has closed: a read gives the end of input (or a
/// reset) within `wait`.
pub fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A multipart body of one file part named `name` holding `data`.
pub fn multipart(boundary: &str, name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// The names in a directory, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The boundary of the forms [`form`] writes, and their `Content-Type`.
pub const BOUNDARY: &str = "XX";
pub const FORM: &str = "multipart/form-data; boundary=XX";

/// An app over a pool of its own, removed when the test ends.
pub struct Core {
    pub app: App,
    pub root: TempDir,
}

impl Core {
    /// The limits of `scripts/test-api.sh`: 1 MB, 3 files.
    pub fn new(name: &str) -> Core {
        Core::with(name, Some(1_000_000), 4)
    }

    pub fn with(name: &str, max_size: Option<u64>, max_uploads: usize) -> Core {
        let limits = Limits {
            max_size,
            max_files: 3,
            idle_timeout: None,
        };
        Core::open(name, limits, None, max_uploads)
    }

    /// With any limits, and a signing key or none.
    pub fn open(name: &str, limits: Limits, key: Option<&[u8]>, max_uploads: usize) -> Core {
        let root = TempDir::new(name);
        let pool = Pool::open(root.pool(), Signer::new(key)).unwrap();
        Core {
            app: App::new(pool, limits, true, max_uploads),
            root,
        }
    }

    pub fn pool(&self) -> PathBuf {
        self.root.pool()
    }

    /// What the pool directory holds, sorted.
    pub fn pool_entries(&self) -> Vec<String> {
        entries(&self.pool())
    }

    /// Routes, handles and renders a request, as every front end does.
    pub fn ask(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        length: Option<u64>,
    ) -> Response {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let mut body = body;
        let route = route(method, path, query);
        render(
            self.app.handle(
                route,
                Request {
                    method: method.into(),
                    path: path.into(),
                    query: query.into(),
                    headers: headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    content_length: length,
                    body: &mut body,
                    interrupt: None,
                },
            ),
        )
    }

    pub fn get(&self, url: &str) -> Response {
        self.ask("GET", url, &[], b"", None)
    }

    /// Posts a multipart form with its `Content-Length`.
    pub fn post(&self, url: &str, body: &[u8]) -> Response {
        self.ask(
            "POST",
            url,
            &[("Content-Type", FORM)],
            body,
            Some(body.len() as u64),
        )
    }

    /// The status document of an identifier.
    pub fn status(&self, id: &str) -> Value {
        json(&self.get(&format!("/upload/status?X-Progress-ID={id}")))
    }

    /// The files of an upload's bucket that are not the pool's own.
    pub fn stored_files(&self, id: &str) -> Vec<String> {
        let mut names = entries(&self.pool().join(id));
        names.retain(|n| n != "lock" && n != "status.json");
        names
    }
}

/// One part of a form: field name, file name (`None` for a plain field),
/// content type, content.
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body with boundary `XX`, as a browser writes it.
pub fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, content_type, data) in parts {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            b.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        if let Some(t) = content_type {
            b.extend_from_slice(format!("\r\nContent-Type: {t}").as_bytes());
        }
        b.extend_from_slice(b"\r\n\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// A form of one file `f` named `filename`.
pub fn one_file(filename: &str, data: &[u8]) -> Vec<u8> {
    form(&[("f", Some(filename), None, data)])
}

/// An answer's body as JSON.
pub fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&response.body)
        )
    })
}

/// The five escapes of `escape_html`, undone.
pub fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A Prometheus text exposition (format 0.0.4), read strictly: every
/// sample belongs to a family declared by `# HELP` and `# TYPE` before it
/// (a histogram's by its `_bucket`, `_sum` and `_count`), no series comes
/// twice, every value is a number; a histogram's buckets are cumulative
/// and its `+Inf` bucket is its `_count`. Samples by their series as
/// written, `name{label="value",…}`.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    use std::collections::BTreeMap;
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'), "no final line end: {text}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "{line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "TYPE without HELP"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
            for pair in inner.unwrap_or_else(|| panic!("{line}")).split(',') {
                let (label, quoted) = pair.split_once('=').unwrap();
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                );
                assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'));
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "series twice: {line}"
        );
    }
    // Histograms: buckets in rising order of `le`, cumulative, `+Inf`
    // equal to `_count`.
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let prefix = format!("{family}_bucket{{");
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (series, value) in samples.range(prefix.clone()..) {
            let Some(labels) = series.strip_prefix(&prefix) else {
                break;
            };
            let labels = labels.strip_suffix('}').unwrap();
            let (others, le) = labels.rsplit_once(",le=").unwrap();
            let le: f64 = match le.trim_matches('"') {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap(),
            };
            by_series
                .entry(others.to_owned())
                .or_default()
                .push((le, *value));
        }
        assert!(!by_series.is_empty(), "histogram {family} without buckets");
        for (labels, mut buckets) in by_series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{{{labels}}} not cumulative: {buckets:?}"
            );
            let (le, last) = buckets.last().copied().unwrap();
            assert!(le.is_infinite(), "{family}{{{labels}}} has no +Inf bucket");
            let count = samples[&format!("{family}_count{{{labels}}}")];
            assert_eq!(last, count, "{family}{{{labels}}}: +Inf is not _count");
            assert!(samples.contains_key(&format!("{family}_sum{{{labels}}}")));
        }
    }
    samples
}

/// The CGI program on `pool`, as a web server runs it: one request, `env`
/// beside the CGI variables every request has (and nothing of this
/// process's environment), `body` on its stdin; what it prints, after
/// asserting that it exited 0.
pub fn run_cgi(pool: &Path, env: &[(&str, &str)], body: &[u8]) -> String {
    let mut child = spawn_cgi(pool, env);
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The CGI program on `pool` started as [`run_cgi`] starts it, its stdin
/// and stdout pipes left to the caller.
pub fn spawn_cgi(pool: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fileupload"))
        .arg("--directory")
        .arg(pool)
        .arg("cgi")
        .env_clear()
        .envs([
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SCRIPT_NAME", "/cgi-bin/fileupload"),
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to the process `pid`, as a service manager stops it.
pub fn terminate(pid: u32) {
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
}
