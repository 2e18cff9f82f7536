//! The one error type of the program: every failure has a kind, which
//! decides the HTTP status it answers with, and a message fit to show a
//! client.

use std::fmt;
use std::io;

/// What went wrong, as far as the client and the control flow care: each
/// kind answers with one HTTP status ([`ErrorKind::status`]), and code that
/// treats one failure apart from the others matches on the kind, never on
/// a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the request, its body or the identifier is malformed.
    BadRequest,
    /// 403: a request the resource never allows: a tus `PATCH` on a final
    /// upload of the concatenation extension.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 405: a known path with a method it does not take.
    MethodNotAllowed,
    /// 408: the client stopped sending.
    Timeout,
    /// 409: an upload with this identifier is in progress.
    Conflict,
    /// 410: the upload was cleared while it was written or handed over.
    Gone,
    /// 413: over the size limit, or over a count limit of the form.
    TooLarge,
    /// 412: a tus request for a protocol version other than 1.0.0.
    PreconditionFailed,
    /// 415: an upload that is not `multipart/form-data`.
    UnsupportedMediaType,
    /// 423: a tus upload another request is writing to (RFC 4918's
    /// `Locked`, as tusd answers it): unlike 409 it says "retry later",
    /// not "your offset is wrong".
    Locked,
    /// 431: a request head too large to read.
    HeadTooLarge,
    /// 500: the pool directory or the program itself failed.
    Internal,
    /// 501: a transfer coding the server does not know.
    NotImplemented,
    /// 502: the application behind the core failed.
    BadGateway,
    /// 503: every upload slot is taken; worth retrying shortly.
    Unavailable,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
    /// 460: a tus chunk whose `Upload-Checksum` does not match its bytes
    /// (the status the tus checksum extension defines).
    ChecksumMismatch,
    /// 507: the pool's file system is full.
    DiskFull,
}

impl ErrorKind {
    /// Every kind, in the order of their statuses.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::BadRequest,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Timeout,
        ErrorKind::Conflict,
        ErrorKind::Gone,
        ErrorKind::PreconditionFailed,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Locked,
        ErrorKind::HeadTooLarge,
        ErrorKind::ChecksumMismatch,
        ErrorKind::Internal,
        ErrorKind::NotImplemented,
        ErrorKind::BadGateway,
        ErrorKind::Unavailable,
        ErrorKind::VersionNotSupported,
        ErrorKind::DiskFull,
    ];

    /// The kind's name where a word is wanted (a metric's `reason` label):
    /// lower case, words joined by `_`.
    pub const fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Gone => "gone",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Locked => "locked",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::ChecksumMismatch => "checksum_mismatch",
            ErrorKind::Internal => "internal",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::VersionNotSupported => "version_not_supported",
            ErrorKind::DiskFull => "disk_full",
        }
    }

    /// The HTTP status this kind of failure answers with.
    pub const fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Timeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::Gone => 410,
            ErrorKind::TooLarge => 413,
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Locked => 423,
            ErrorKind::HeadTooLarge => 431,
            ErrorKind::Internal => 500,
            ErrorKind::NotImplemented => 501,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::ChecksumMismatch => 460,
            ErrorKind::DiskFull => 507,
        }
    }
}

/// A failure with its kind and a message for the client.
///
/// Every layer returns this type, so a front end only has to render it
/// (see [`Error::to_json`]) and the pool can record it in the upload's
/// status for a polling client to see.
///
/// ```
/// use fileupload::{Error, model::error::ErrorKind};
/// let e = Error::bad_request("identifier is empty");
/// assert_eq!(e.kind(), ErrorKind::BadRequest);
/// assert_eq!(e.status(), 400);
/// assert_eq!(e.message(), "identifier is empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result type used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// 400: the request or the identifier is malformed.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// 409: an upload with this identifier is in progress.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    /// 413: over the size limit, or over a count limit of the form.
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::TooLarge, message)
    }

    /// 500: the pool directory or the program itself failed.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An I/O failure of the pool directory: a full disk is 507 and says so,
    /// anything else is 500. `what` names the operation for the message.
    pub fn disk(what: &str, err: &io::Error) -> Error {
        match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::new(
                ErrorKind::DiskFull,
                format!("disk full: no space left to {what}"),
            ),
            _ => Error::internal(format!("pool directory unusable: cannot {what}: {err}")),
        }
    }

    /// The JSON body every error answers with:
    /// `{"state": "error", "error": "<message>", "status": <code>}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"state": "error", "error": self.message, "status": self.status()})
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_507() {
        let e = Error::disk("write", &io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.kind(), ErrorKind::DiskFull);
        assert_eq!(e.status(), 507);
        assert!(e.message().contains("disk full"), "{}", e.message());
        let e = Error::disk("write", &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.status(), 500);
    }

    /// `ALL` holds each kind once (a kind added to the enum but not to
    /// `ALL` would be missing from the metrics): the statuses tell them
    /// apart, and the labels are words.
    #[test]
    fn every_kind_once() {
        let statuses: std::collections::BTreeSet<u16> =
            ErrorKind::ALL.iter().map(|k| k.status()).collect();
        assert_eq!(statuses.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            assert!(
                kind.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn json_body() {
        let e = Error::too_large("too big");
        assert_eq!(
            e.to_json().to_string(),
            r#"{"error":"too big","state":"error","status":413}"#
        );
    }
}
