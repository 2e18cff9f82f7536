//! Operating a fleet, against the built daemon: the host name in every log
//! line, `/metrics` (off unless asked for) and `/healthz`.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;

/// The log line of the next request whose path is `path`, split in fields.
fn log_line(d: &Daemon, path: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = d.log.recv_timeout(left).expect("a log line");
        let fields: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if fields.get(3).map(String::as_str) == Some(path) {
            return fields;
        }
    }
}

/// `time host method path status bytes duration identifier`: the host is
/// the second field, given or the kernel's.
#[test]
fn log_lines_carry_the_host_name() {
    let d = Daemon::start("host-given", &["--host-name", "web-7"]);
    d.exchange(
        b"GET /upload/status?X-Progress-ID=h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let fields = log_line(&d, "/upload/status");
    assert_eq!(fields.len(), 8, "{fields:?}");
    assert_eq!(
        (&*fields[1], &*fields[2], &*fields[4], &*fields[7]),
        ("web-7", "GET", "200", "h1"),
        "{fields:?}"
    );

    let d = Daemon::start("host-kernel", &[]);
    d.exchange(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let fields = log_line(&d, "/nowhere");
    assert_eq!(fields[1], kernel.trim(), "{fields:?}");
    assert_eq!(fields[4], "404", "{fields:?}");
}
