//! `--exec`: the application is a CGI program, run once per upload with
//! the description on its stdin (or with a request it is passed
//! unchanged); its CGI answer (RFC 3875 section 6) is the client's answer.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::thread;

use super::{MAX_ANSWER, relayed_header};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::http::{HeaderName, Response};

/// The most bytes of headers a CGI program's answer may have.
const MAX_HEAD: usize = 64 * 1024;

/// Runs a CGI program with `env` added to this process's environment and
/// `stdin` as its input; its output, read as a CGI answer, is the answer.
pub(crate) fn run_program(
    program: &OsString,
    args: &[OsString],
    env: &[(&str, String)],
    stdin: &mut dyn Read,
) -> Result<Response> {
    let failed = |e: &dyn std::fmt::Display| {
        crate::log::say!("the application {} failed: {e}", program.to_string_lossy());
        Error::new(ErrorKind::BadGateway, "the application failed")
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
    parse_response(&out)
}

/// Reads the answer of a CGI program (RFC 3875 section 6): header lines
/// ending in LF or CRLF, a blank line, the body. `Status` sets the status;
/// a `Location` without it is a redirect (302). Anything else is refused,
/// as a web server would refuse it.
pub(crate) fn parse_response(output: &[u8]) -> Result<Response> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::BadGateway,
            format!("the application's answer is malformed: {why}"),
        )
    };
    let mut rest = output;
    let mut headers = Vec::new();
    // Header lines, those dropped as unsafe to relay included.
    let mut header_lines = 0usize;
    let mut status = None;
    loop {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .filter(|&n| n < MAX_HEAD)
            .ok_or_else(|| bad("no end of headers"))?;
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line).map_err(|_| bad("a header is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a header line without ':'"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad("an invalid header name"));
        }
        if name.eq_ignore_ascii_case("Status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (100..1000).contains(c))
                .ok_or_else(|| bad("an invalid Status"))?;
            status = Some(code);
        } else {
            header_lines += 1;
            headers.extend(relayed_header(name, value));
        }
        if header_lines > 1000 {
            return Err(bad("too many headers"));
        }
    }
    let has = |n: &str| {
        headers
            .iter()
            .any(|(h, _): &(HeaderName, _)| h.eq_ignore_ascii_case(n))
    };
    let status = match status {
        Some(code) => code,
        None if has("Location") => 302,
        None if has("Content-Type") => 200,
        None => return Err(bad("neither Status, Location nor Content-Type")),
    };
    Ok(Response {
        status,
        headers,
        body: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn program_answers() {
        let r = parse_response(b"Location: /done\r\n\r\n").unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.header("Location"), Some("/done"));
        let r = parse_response(b"Status: 404\nContent-Type: text/plain\n\n").unwrap();
        assert_eq!(r.status, 404);
        assert!(r.body.is_empty());
        // A header that could split the client's response is dropped, the
        // rest relayed.
        let r =
            parse_response(b"Content-Type: text/plain\nX-Bad: a\rb\nX-Nul: a\0b\nX-Ok: c\n\nbody")
                .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body"[..]));
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Content-Type", "X-Ok"]);
        for bad in [
            &b""[..],
            b"Content-Type: text/plain",
            b"Status: abc\n\n",
            b"Status: 99\nContent-Type: a\n\n",
            b"X-Only: 1\n\n",
            b"Bad Header: 1\n\n",
            b"\xff: 1\n\n",
        ] {
            assert_eq!(parse_response(bad).unwrap_err().status(), 502, "{bad:?}");
        }
    }
}
