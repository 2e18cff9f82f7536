//! The tus 1.0.0 resumable upload protocol (tus.io): core, creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! concatenation ([`mod@concat`]) and expiration, over the pool's resumable
//! uploads ([`crate::pool::resumable`]). The answers are typed
//! ([`TusAnswer`]); `render.rs` writes their headers.
//!
//! A tus upload's ID is a pool identifier (`ID`, or `ID:MAC` under a
//! key), so its status, the CLI and `gc` work on it as on any upload.

mod concat;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Answer, App, Outcome, Tus, TusAnswer, tus_path};
use crate::model::error::{Error, ErrorKind, Result};
use crate::model::http::{Request, percent_decode};
use crate::model::identifier::Identifier;
use crate::model::multipart::{Pace, body_error};
use crate::model::status::State;
use crate::model::tus::{
    Concat, OFFSET_OCTET_STREAM, PARTIAL, VERSION, parse_checksum, parse_concat, parse_digits,
    parse_metadata,
};
use crate::pool::resumable::{Resumable, STOP_POLL, StopWatch};

/// Bytes read from a body at a time.
const READ_BLOCK: usize = 256 * 1024;

impl App {
    /// Answers a tus request (see [`super::route`] for the paths).
    pub(super) fn tus(
        &self,
        tus: Tus,
        mut request: Request<'_>,
        outcome: &mut Outcome,
    ) -> Result<Answer> {
        // OPTIONS is how a client learns the version: it needs none.
        if tus != Tus::Options && request.header("Tus-Resumable").map(str::trim) != Some(VERSION) {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("this server speaks tus {VERSION}: Tus-Resumable: {VERSION} is required"),
            ));
        }
        let answer = match tus {
            Tus::Options => TusAnswer::Options {
                max_size: self.limits.max_size,
            },
            Tus::Create => self.tus_create(&mut request, outcome)?,
            Tus::Head => {
                let id = self.tus_id(&request, outcome)?;
                let info = self.pool.resumable_info(&id)?;
                TusAnswer::Info {
                    offset: info.offset,
                    length: info.length,
                    metadata: info.metadata,
                    expires: info.expires,
                    concat: info.concat,
                }
            }
            Tus::Patch => self.tus_patch(&mut request, outcome)?,
            Tus::Delete => {
                let id = self.tus_id(&request, outcome)?;
                self.pool.resumable_info(&id)?;
                self.pool.clear_upload_bucket(&id)?;
                TusAnswer::Terminated
            }
        };
        Ok(Answer::Tus(answer))
    }

    /// `POST …/files`: a new upload, with `Upload-Length` or
    /// `Upload-Defer-Length: 1`, perhaps `Upload-Metadata`, perhaps its
    /// first bytes (creation-with-upload).
    fn tus_create(&self, request: &mut Request<'_>, outcome: &mut Outcome) -> Result<TusAnswer> {
        let concat = request
            .header("Upload-Concat")
            .map(parse_concat)
            .transpose()?;
        if let Some(Concat::Final { ids, value }) = concat {
            return self.tus_final(request, outcome, &ids, value);
        }
        let partial = concat == Some(Concat::Partial);
        let length = match (
            request.header("Upload-Length"),
            request.header("Upload-Defer-Length"),
        ) {
            (Some(length), None) => Some(parse_digits("Upload-Length", length.trim())?),
            (None, Some(defer)) if defer.trim() == "1" => None,
            (None, Some(_)) => {
                return Err(Error::bad_request("Upload-Defer-Length must be 1"));
            }
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(
                    "Upload-Length and Upload-Defer-Length exclude each other",
                ));
            }
            (None, None) => {
                return Err(Error::bad_request(
                    "Upload-Length or Upload-Defer-Length: 1 is required",
                ));
            }
        };
        if let Some(length) = length {
            self.check_size(length)?;
        }
        let metadata = parse_metadata(request.header("Upload-Metadata").unwrap_or(""))?;
        let body = sends_body(request);
        if body && !is_offset_stream(request) {
            return Err(unsupported_type());
        }
        if let (Some(length), Some(declared)) = (length, request.content_length)
            && declared > length
        {
            return Err(Error::too_large("a body longer than Upload-Length"));
        }
        let _slot = if body { Some(self.take_slot()?) } else { None };
        let id = self.pool.create_identifier()?;
        let shown = self.pool.format_identifier(&id);
        outcome.identifier = Some(shown.clone());
        let concat = partial.then(|| PARTIAL.to_owned());
        let mut upload = self.pool.create_resumable(&id, length, &metadata, concat)?;
        if body {
            self.receive(&mut upload, request, outcome)?;
        }
        let status = upload.save()?;
        Ok(TusAnswer::Created {
            location: location(&request.path, &shown),
            offset: status.received.unwrap_or(0),
            // A partial upload is a piece: only its final one goes to the
            // application.
            completed: status.state == State::Done && !partial,
            expires: status.tus.and_then(|t| t.expires),
        })
    }

    /// `PATCH …/files/ID`: bytes at `Upload-Offset`.
    fn tus_patch(&self, request: &mut Request<'_>, outcome: &mut Outcome) -> Result<TusAnswer> {
        if !is_offset_stream(request) {
            return Err(unsupported_type());
        }
        let offset = request
            .header("Upload-Offset")
            .ok_or_else(|| Error::bad_request("Upload-Offset is required"))
            .and_then(|o| parse_digits("Upload-Offset", o.trim()))?;
        let length = match request.header("Upload-Length") {
            Some(length) => Some(parse_digits("Upload-Length", length.trim())?),
            None => None,
        };
        if let Some(length) = length {
            self.check_size(length)?;
        }
        let id = self.tus_id(request, outcome)?;
        let _slot = self.take_slot()?;
        let mut upload = self.pool.resume(&id)?;
        let partial = match upload.concat() {
            None => false,
            Some(PARTIAL) => true,
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "a final upload is made of its partial uploads and cannot be written to",
                ));
            }
        };
        let was_done = upload.is_done();
        if upload.offset() != offset {
            return Err(Error::conflict(format!(
                "Upload-Offset is {offset}, but the upload holds {} bytes",
                upload.offset()
            )));
        }
        if let Some(length) = length {
            upload.set_length(length)?;
        }
        if let (Some(length), Some(declared)) = (upload.length(), request.content_length)
            && offset.saturating_add(declared) > length
        {
            return Err(Error::too_large("a body beyond the upload's length"));
        }
        // What arrived is kept even when the body was cut short: the
        // client resumes from the offset HEAD then gives.
        let received = self.receive(&mut upload, request, outcome);
        let saved = upload.save();
        received?;
        let status = saved?;
        Ok(TusAnswer::Patched {
            offset: status.received.unwrap_or(0),
            completed: !was_done && status.state == State::Done && !partial,
            expires: status.tus.and_then(|t| t.expires),
        })
    }

    /// Reads a body into `upload`. With `Upload-Checksum`, the bytes count
    /// only when the body arrived whole and matches it; else (460, or the
    /// read's error) the upload is set back to where the body began.
    fn receive(
        &self,
        upload: &mut Resumable,
        request: &mut Request<'_>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let mut checksum = match request.header("Upload-Checksum") {
            Some(header) => Some(parse_checksum(header)?),
            None => None,
        };
        let mut context = checksum.as_ref().map(|c| c.hasher());
        let start = upload.offset();
        upload.expect_body(request.content_length);
        let mut pace = Pace::new(self.limits.idle_timeout, 0);
        let mut block = vec![0u8; READ_BLOCK];
        let stop = upload.stop_watch();
        let interrupt = request.interrupt;
        let body = &mut *request.body;
        let mut read_all = || -> Result<()> {
            loop {
                let n = match body.read(&mut block) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(body_error(&e)),
                };
                outcome.received += n as u64;
                if let Some(pace) = pace.as_mut() {
                    pace.check(outcome.received)?;
                }
                let end = upload.offset() + n as u64;
                if self.limits.max_size.is_some_and(|max| end > max) {
                    return Err(self.too_large());
                }
                if let Some(context) = context.as_mut() {
                    context.update(&block[..n]);
                }
                upload.write(&block[..n])?;
            }
        };
        let mut result = match interrupt {
            Some(wake) => watched(&stop, wake, read_all),
            None => read_all(),
        };
        // Stopped on purpose: the reason, not the read's failure.
        if result.is_err()
            && let Some(why) = stop.why()
        {
            result = Err(why);
        }
        let verdict = match (result, checksum.take(), context) {
            (Ok(()), Some(expected), Some(context)) => {
                if context.finish() == expected.expected {
                    Ok(())
                } else {
                    Err(Error::new(
                        ErrorKind::ChecksumMismatch,
                        "the body does not match Upload-Checksum",
                    ))
                }
            }
            (result, _, _) => result,
        };
        if verdict.is_err() && request.header("Upload-Checksum").is_some() {
            upload.rewind(start)?;
        }
        verdict
    }

    /// The upload named by the request's path; 404 for an ID that is not
    /// an identifier of this pool (or whose MAC is wrong).
    fn tus_id(&self, request: &Request<'_>, outcome: &mut Outcome) -> Result<Identifier> {
        let text = tus_path(&request.path)
            .flatten()
            .map(percent_decode)
            .ok_or_else(|| Error::not_found("no such upload"))?;
        let id = self
            .pool
            .verify_identifier(&text)
            .map_err(|_| Error::not_found("no such upload"))?;
        outcome.identifier = Some(text);
        Ok(id)
    }

    /// 413 for a length over `--max-size`.
    fn check_size(&self, length: u64) -> Result<()> {
        match self.limits.max_size {
            Some(max) if length > max => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    fn too_large(&self) -> Error {
        Error::too_large(format!(
            "upload larger than the limit of {} bytes",
            self.limits.max_size.unwrap_or(0)
        ))
    }
}

/// Runs `read` (the reading of a body into an upload) while a second
/// thread looks, every [`STOP_POLL`], whether the writer was asked to stop
/// (see [`crate::pool::resumable`]); if so it wakes the read
/// with `wake`, since a client that went silent would otherwise hold the
/// upload until the idle timeout.
fn watched(
    stop: &StopWatch,
    wake: &(dyn Fn() + Sync),
    read: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if stop.why().is_some() {
                    wake();
                    return;
                }
                std::thread::park_timeout(STOP_POLL);
            }
        });
        let result = read();
        finished.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        result
    })
}

/// Whether a creation sends a body (creation-with-upload): a declared
/// length above 0, or a chunked one with the tus content type; any other
/// request has none to read.
pub(super) fn sends_body(request: &Request<'_>) -> bool {
    match request.content_length {
        Some(0) => false,
        Some(_) => true,
        None => is_offset_stream(request),
    }
}

/// Whether the body is `application/offset+octet-stream`.
fn is_offset_stream(request: &Request<'_>) -> bool {
    request
        .header("Content-Type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

fn unsupported_type() -> Error {
    Error::new(
        ErrorKind::UnsupportedMediaType,
        format!("a tus body must be {OFFSET_OCTET_STREAM}"),
    )
}

/// The new upload's URL relative to the creation request's path:
/// `files/ID` from `…/files`, `./ID` from `…/files/` (the `./` keeps an
/// `ID:MAC` from being read as a URL scheme).
fn location(path: &str, id: &str) -> String {
    match path.rsplit_once('/') {
        Some((_, "")) => format!("./{id}"),
        Some((_, last)) => format!("{last}/{id}"),
        None => format!("{path}/{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn locations_resolve_under_the_creation_path() {
        assert_eq!(location("/app/files", "abc"), "files/abc");
        assert_eq!(location("/files/", "abc:12"), "./abc:12");
        assert_eq!(location("files", "abc"), "files/abc");
    }
}
