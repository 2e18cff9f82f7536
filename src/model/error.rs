//! The one error type of the program: every failure knows the HTTP status it
//! answers with and a message fit to show a client.

use std::fmt;
use std::io;

/// A failure with its HTTP status and a message for the client.
///
/// Every layer returns this type, so a front end only has to turn it into a
/// response (see [`Error::to_json`]) and the pool can record it in the
/// upload's status for a polling client to see.
///
/// ```
/// use fileupload::Error;
/// let e = Error::bad_request("identifier is empty");
/// assert_eq!(e.status(), 400);
/// assert_eq!(e.message(), "identifier is empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    message: String,
}

/// The result type used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error answering with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// 400: the request or the identifier is malformed.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(400, message)
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(404, message)
    }

    /// 409: an upload with this identifier is in progress.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(409, message)
    }

    /// 413: over the size limit, or over a count limit of the form.
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(413, message)
    }

    /// 500: the pool directory or the program itself failed.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(500, message)
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An I/O failure of the pool directory: a full disk is 507 and says so,
    /// anything else is 500. `what` names the operation for the message.
    pub fn disk(what: &str, err: &io::Error) -> Error {
        match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                Error::new(507, format!("disk full: no space left to {what}"))
            }
            _ => Error::internal(format!("pool directory unusable: cannot {what}: {err}")),
        }
    }

    /// The JSON body every error answers with:
    /// `{"state": "error", "error": "<message>", "status": <code>}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"state": "error", "error": self.message, "status": self.status})
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
        assert_eq!(e.status(), 507);
        assert!(e.message().contains("disk full"), "{}", e.message());
        let e = Error::disk("write", &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn json_body() {
        let v = Error::too_large("too big").to_json();
        assert_eq!(v["state"], "error");
        assert_eq!(v["error"], "too big");
        assert_eq!(v["status"], 413);
    }
}
