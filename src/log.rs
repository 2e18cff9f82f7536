//! The request log: one line per request on stderr, the same for every
//! front end.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::app::Outcome;
// Without control characters, a request cannot cut or forge a log line.
use crate::model::status::push_without_controls;

/// The host name every log line carries, set once at start.
static HOST: OnceLock<String> = OnceLock::new();

/// Names this host in every log line from now on: `name` when given
/// (`--host-name`), else the kernel's host name. Only the first call
/// counts; a process serves as one host.
pub fn set_host(name: Option<&str>) {
    let name = name.map(str::to_owned).unwrap_or_else(kernel_host_name);
    let _ = HOST.set(log_field(&name));
}

/// The host name log lines carry: `-` until [`set_host`] was called.
pub fn host() -> &'static str {
    HOST.get().map(String::as_str).unwrap_or("-")
}

/// The kernel's host name (`uname -n`), read from procfs: no `unsafe` for
/// it, and Linux is where the program runs. Empty (logged as `-`) when
/// it cannot be read.
fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Text fit to stand as one field of a log line: without control
/// characters or spaces (which would shift every field after it), `-` when
/// empty.
fn log_field(text: &str) -> String {
    let field: String = text
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    if field.is_empty() { "-".into() } else { field }
}

/// Writes `fileupload: ` and the message as one line on stderr, in one
/// write: stderr is unbuffered, and `eprintln!` writes each piece of its
/// format on its own, so a reader of the log (a test waiting for
/// `listening on ADDR`, a log shipper) could see half a line, and the
/// lines of concurrent threads could cut into each other.
pub fn message(args: std::fmt::Arguments) {
    write_line(format!("fileupload: {args}\n"));
}

/// [`message`] with `format!`'s arguments.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::log::message(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Writes `time host method path status bytes duration identifier` to
/// stderr, where bytes are the request body bytes read and host is the
/// one [`set_host`] named, so that the logs of a fleet can be merged.
pub(crate) fn request(method: &str, path: &str, outcome: &Outcome, took: Duration) {
    write_line(request_line(method, path, outcome, took));
}

/// The log line of one request, as [`request`] writes it, newline ended.
pub(crate) fn request_line(method: &str, path: &str, outcome: &Outcome, took: Duration) -> String {
    use std::fmt::Write as _;
    // Pieces pushed onto one string rather than one `format!`, the time
    // formatted once a second: the parked status connections log tens of
    // thousands of lines a second, and `perf` put 5% of their CPU in the
    // line's formatting (docs/performance.md).
    let mut line = String::with_capacity(96 + path.len());
    push_timestamp(&mut line, SystemTime::now());
    line.push(' ');
    line.push_str(host());
    line.push(' ');
    line.push_str(method);
    line.push(' ');
    push_without_controls(&mut line, path);
    // Writing to a String cannot fail. The duration is cut to the
    // millisecond, not rounded.
    let _ = write!(
        line,
        " {} {} {}.{:03}s ",
        outcome.status(),
        outcome.received,
        took.as_secs(),
        took.subsec_millis()
    );
    match outcome.identifier.as_deref() {
        Some(id) => push_without_controls(&mut line, id),
        None => line.push('-'),
    }
    line.push('\n');
    line
}

/// How long [`Held`] keeps a line at most before writing it.
const HOLD: Duration = Duration::from_millis(50);

/// Request log lines kept back to be written several in one `write(2)`,
/// by a thread that answers many small requests in a row (the threads of
/// parked status connections): a write of its own per status request
/// took a tenth of their CPU (`perf`, docs/performance.md). A line is due
/// [`HOLD`] after the first line held, sooner when [`MAX_LINE`] bytes are
/// held; so the log may show it that much after lines of other threads
/// written meanwhile (each line carries its own time). The holder writes
/// them once [`Held::due`] has come; the server, on stopping, calls
/// [`Held::stop`].
#[derive(Default)]
pub(crate) struct Held {
    lines: String,
    since: Option<std::time::Instant>,
    /// Lines are written at once: the server is stopping, and the
    /// process may end before a line held would be due.
    stopped: bool,
}

impl Held {
    /// Keeps `line` (from [`request_line`]), writing what was held first
    /// when the two would not fit one atomic write.
    pub(crate) fn push(&mut self, line: String) {
        let line = fit(line);
        if self.lines.len() + line.len() > MAX_LINE {
            self.write();
        }
        self.since.get_or_insert_with(std::time::Instant::now);
        self.lines.push_str(&line);
        if self.stopped {
            self.write();
        }
    }

    /// Writes the lines held, and each line pushed from now on at once.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.write();
    }

    /// When the lines held must be written: `None` when there are none.
    pub(crate) fn due(&self) -> Option<std::time::Instant> {
        self.since.map(|since| since + HOLD)
    }

    /// Writes the lines held, if any, in one write.
    pub(crate) fn write(&mut self) {
        if !self.lines.is_empty() {
            write_raw(self.lines.as_bytes());
            self.lines.clear();
        }
        self.since = None;
    }
}

/// The longest log line: the most one `write(2)` puts in a pipe whole
/// (`PIPE_BUF` on Linux), so that lines written at once by several threads
/// never cut into each other, even unlocked.
const MAX_LINE: usize = 4096;

/// Writes a log line to stderr in one `write(2)`, through a second
/// descriptor of it rather than `std::io::stderr()`. That one serialises
/// every writer of the process on one lock held across the system call:
/// with 32 uploads keeping both cores busy, status requests on 8
/// connections queued on it (strace: about one contended futex wait per
/// request, on that lock's address, around the log line's `write`), and a
/// thread descheduled while holding it held them all. A single write of
/// at most [`MAX_LINE`] bytes is atomic on a pipe and on a file, so the
/// lock adds nothing; a longer line (a path of kilobytes) is cut there.
pub(crate) fn write_line(line: String) {
    write_raw(fit(line).as_bytes());
}

/// Writes `bytes` (whole lines, at most [`MAX_LINE`]) in one `write(2)`.
fn write_raw(bytes: &[u8]) {
    static STDERR: OnceLock<Option<File>> = OnceLock::new();
    let raw = STDERR.get_or_init(|| {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from)
    });
    // Nowhere to report a failed log write.
    let _ = match raw.as_ref() {
        Some(mut file) => file.write_all(bytes),
        None => std::io::stderr().write_all(bytes),
    };
}

/// `line` cut to [`MAX_LINE`] bytes, ending `...` and its newline, when
/// longer.
fn fit(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE - 4;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...\n");
    }
    line
}

/// RFC 3339 UTC time to the second, e.g. `2026-11-28T03:07:46Z`.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The HTTP date (RFC 9110 section 5.6.7), e.g. `Tue, 24 Nov 2026 03:07:46 GMT`.
pub(crate) fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = Civil::of(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(c.days % 7) as usize],
        c.day,
        MONTHS[(c.month as usize + 11) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// A time's text, kept for the second it names: every answer carries a
/// date and every request a log line, and a busy thread asks for the same
/// second thousands of times.
struct SecondCache {
    second: std::cell::Cell<u64>,
    text: std::cell::RefCell<String>,
}

impl SecondCache {
    const fn new() -> SecondCache {
        SecondCache {
            // No time names this second: the first use fills the cache.
            second: std::cell::Cell::new(u64::MAX),
            text: std::cell::RefCell::new(String::new()),
        }
    }

    /// Appends `make(t)` to `out`, made once per second.
    fn push(&self, t: SystemTime, make: fn(SystemTime) -> String, out: &mut String) {
        let second = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second.get() != second {
            *self.text.borrow_mut() = make(t);
            self.second.set(second);
        }
        out.push_str(&self.text.borrow());
    }
}

thread_local! {
    static TIMESTAMP: SecondCache = const { SecondCache::new() };
    static HTTP_DATE: SecondCache = const { SecondCache::new() };
}

/// Appends [`timestamp`]`(t)` to `out`.
fn push_timestamp(out: &mut String, t: SystemTime) {
    TIMESTAMP.with(|cache| cache.push(t, timestamp, out));
}

/// [`http_date`] of now.
pub(crate) fn http_date_now() -> String {
    let mut date = String::with_capacity(29);
    HTTP_DATE.with(|cache| cache.push(SystemTime::now(), http_date, &mut date));
    date
}

/// A UTC time broken down.
struct Civil {
    /// Days since 1970-01-01 (a Thursday).
    days: u64,
    year: i64,
    month: i64,
    day: i64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Civil {
    fn of(t: SystemTime) -> Civil {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (days, rem) = (secs / 86400, secs % 86400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            days,
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A line of a request with a path of kilobytes is cut to one pipe
    /// write, whole characters and a newline kept; others are untouched.
    #[test]
    fn long_lines_are_cut_to_one_atomic_write() {
        let short = "2026-12-07T04:36:58Z web GET /upload/status 200 0 0.000s a\n".to_owned();
        assert_eq!(super::fit(short.clone()), short);
        let exact = format!("{}\n", "a".repeat(super::MAX_LINE - 1));
        assert_eq!(super::fit(exact.clone()), exact);
        for extra in 0..4 {
            // A three-byte character across the cut, wherever it falls.
            let long = format!(
                "{}€{}\n",
                "b".repeat(super::MAX_LINE - 6 + extra),
                "c".repeat(9000)
            );
            let cut = super::fit(long);
            assert!(cut.len() <= super::MAX_LINE, "{}", cut.len());
            assert!(cut.ends_with("...\n"));
            assert_eq!(cut.matches('\n').count(), 1);
        }
    }

    /// A request's line: the path and identifier without their control
    /// characters (no forged line), the duration cut to the millisecond,
    /// `-` for no identifier.
    #[test]
    fn request_lines() {
        use crate::app::Outcome;
        use crate::model::error::{Error, ErrorKind};
        let mut outcome = Outcome::refused(Error::new(ErrorKind::NotFound, "no"));
        outcome.received = 12;
        let line = super::request_line("GET", "/a\nb", &outcome, Duration::from_micros(1_234_999));
        let fields: Vec<&str> = line.trim_end_matches('\n').split(' ').collect();
        assert_eq!(
            fields[1..],
            [super::host(), "GET", "/ab", "404", "12", "1.234s", "-"]
        );
        assert_eq!(super::timestamp(SystemTime::now()).len(), fields[0].len());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        outcome.identifier = Some("u\r\n1".into());
        let line = super::request_line("POST", "/", &outcome, Duration::ZERO);
        assert!(line.ends_with(" 0.000s u1\n"), "{line}");
    }

    /// Held lines wait until due, at most one atomic write's worth; once
    /// stopped, nothing waits.
    #[test]
    fn held_lines() {
        let mut held = super::Held::default();
        assert_eq!(held.due(), None);
        let before = std::time::Instant::now();
        held.push("a\n".into());
        held.push("b\n".into());
        assert_eq!(held.lines, "a\nb\n");
        let due = held.due().unwrap();
        assert!(due >= before + super::HOLD && due <= std::time::Instant::now() + super::HOLD);
        // A line that would take the held ones past one write goes after
        // them are written.
        let long = format!("{}\n", "c".repeat(super::MAX_LINE - 3));
        held.push(long.clone());
        assert_eq!(held.lines, long);
        held.write();
        assert_eq!((held.lines.as_str(), held.due()), ("", None));
        held.push("d\n".into());
        held.stop();
        assert_eq!((held.lines.as_str(), held.due()), ("", None));
        held.push("e\n".into());
        assert_eq!((held.lines.as_str(), held.due()), ("", None));
    }

    #[test]
    fn host_names_are_one_field() {
        assert_eq!(super::log_field("web-1.example"), "web-1.example");
        assert_eq!(super::log_field("a b\tc\n"), "abc");
        assert_eq!(super::log_field(" "), "-");
        assert!(!super::kernel_host_name().is_empty());
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_489_666);
        assert_eq!(super::timestamp(t), "2026-11-24T03:07:46Z");
        assert_eq!(super::http_date(t), "Tue, 24 Nov 2026 03:07:46 GMT");
        assert_eq!(super::timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::http_date(UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(super::timestamp(t), "2000-02-29T00:00:00Z");
        assert_eq!(super::http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
