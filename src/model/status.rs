//! The status and description documents, in the field names of the original
//! and of nginx's upload-progress module so that their clients work as is.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::error::Error;

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nothing has been uploaded under this identifier yet.
    Starting,
    /// The body is being received.
    Uploading,
    /// Every file is stored.
    Done,
    /// The upload failed; `error` and `status` say why.
    Error,
}

impl State {
    /// Every state, in the order an upload goes through them.
    pub const ALL: [State; 4] = [State::Starting, State::Uploading, State::Done, State::Error];

    /// The state's name, as the status document spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Uploading => "uploading",
            State::Done => "done",
            State::Error => "error",
        }
    }
}

/// One file of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The form field's name.
    pub field: String,
    /// The file name as the browser sent it, reduced to its last path
    /// component, without control characters.
    pub filename: String,
    /// The content type as the browser sent it.
    #[serde(rename = "content-type")]
    pub content_type: String,
    /// Bytes stored, once the file is complete.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub length: Option<u64>,
    /// Lowercase hex SHA-256 of the stored bytes, once the file is complete.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Absolute path on disk: only in the description handed to an
    /// application, never in a reply to a browser.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
}

/// The status of an upload; in state `done` it is the upload's description.
///
/// ```
/// use fileupload::model::status::{State, Status};
/// let s = Status::unknown();
/// assert_eq!(s.state, State::Starting);
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"state":"starting"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The identifier as the client must send it again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identifier: Option<String>,
    /// Where the upload stands.
    pub state: State,
    /// Request body bytes read so far.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub received: Option<u64>,
    /// The request's `Content-Length`: `null` when unknown (chunked).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub size: Option<Option<u64>>,
    /// The first file's name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filename: Option<String>,
    /// The first file's content type.
    #[serde(
        rename = "content-type",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub content_type: Option<String>,
    /// The files, in the order they were sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub files: Option<Vec<FileInfo>>,
    /// The non-file form fields.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fields: Option<BTreeMap<String, Vec<String>>>,
    /// A tus upload's `Upload-Metadata` pairs, their values decoded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Present on a tus (resumable) upload only. It marks an upload that
    /// stays `uploading` between requests, with no writer holding it, and
    /// is not interrupted for that.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tus: Option<TusRecord>,
    /// Why the upload failed (state `error` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The HTTP status of the failure (state `error` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
}

/// What a tus upload keeps beyond the status every upload has (its
/// offset is `received`, its length `size`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TusRecord {
    /// The `Upload-Metadata` header as the client sent it, once it passed
    /// the grammar's check: `HEAD` gives it back as given.
    #[serde(
        rename = "upload-metadata",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub upload_metadata: Option<String>,
    /// When an unfinished upload expires (tus' expiration extension), in
    /// seconds since the Unix epoch: the last write (or the creation) plus
    /// `--expire-after`, as the process that wrote it was configured. Past
    /// it, the upload answers 410 and its bucket is removed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<u64>,
    /// `Upload-Concat` (tus' concatenation extension): `partial`, or
    /// `final;` and the partial uploads' URLs as the client gave them
    /// (checked, so that HEAD can give them back).
    #[serde(
        rename = "upload-concat",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub upload_concat: Option<String>,
}

/// A `null` that is present deserializes to `Some(None)`, an absent field
/// (through `default`) to `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Status {
    /// The answer for an identifier nobody has uploaded to: `{"state": "starting"}`.
    pub fn unknown() -> Status {
        Status {
            identifier: None,
            state: State::Starting,
            received: None,
            size: None,
            filename: None,
            content_type: None,
            files: None,
            fields: None,
            metadata: None,
            tus: None,
            error: None,
            status: None,
        }
    }

    /// A new upload that has received nothing yet.
    pub fn begin(identifier: String, size: Option<u64>) -> Status {
        Status {
            identifier: Some(identifier),
            state: State::Uploading,
            received: Some(0),
            size: Some(size),
            files: Some(Vec::new()),
            fields: Some(BTreeMap::new()),
            ..Status::unknown()
        }
    }

    /// Puts the status in state `error` with the error's message and status.
    pub fn fail(&mut self, err: &Error) {
        self.state = State::Error;
        self.error = Some(err.message().to_owned());
        self.status = Some(err.status());
    }

    /// The files recorded so far.
    pub fn files(&self) -> &[FileInfo] {
        self.files.as_deref().unwrap_or(&[])
    }

    /// Whether every file is stored.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }
}

/// The content type of a file whose client gave none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Reduces a browser-sent file name to something safe to show and store in
/// JSON: the last path component (old browsers send `C:\dir\name`), with
/// the three escapes of the HTML form encoding (`%22`, `%0D`, `%0A`) undone,
/// and without control characters (so no CR/LF ever reaches a header or a
/// log line).
///
/// ```
/// use fileupload::model::status::clean_filename;
/// assert_eq!(clean_filename(r"C:\Users\me\report.pdf"), "report.pdf");
/// assert_eq!(clean_filename("a\r\nb.txt"), "ab.txt");
/// assert_eq!(clean_filename("a;b%22q%22%0D%0A.txt"), "a;b\"q\".txt");
/// ```
pub fn clean_filename(name: &str) -> String {
    let name = name
        .replace("%22", "\"")
        .replace("%0D", "")
        .replace("%0A", "");
    let last = name.rsplit(['/', '\\']).next().unwrap_or(&name);
    strip_controls(last)
}

/// Removes control characters (C0, DEL and C1).
pub fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_without_controls(&mut out, text);
    out
}

/// Appends `text` to `out` without its control characters, as
/// [`strip_controls`] gives it: for a caller building a longer string.
pub(crate) fn push_without_controls(out: &mut String, text: &str) {
    out.extend(text.chars().filter(|c| !c.is_control()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_documents() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }

    #[test]
    fn size_null_round_trips() {
        let s = Status::begin("abc".into(), None);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""size":null"#), "{text}");
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let s = Status::begin("abc".into(), Some(7));
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.size, Some(Some(7)));
    }

    #[test]
    fn error_fields() {
        let mut s = Status::begin("abc".into(), Some(7));
        s.fail(&Error::too_large("too big"));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "error");
        assert_eq!(v["error"], "too big");
        assert_eq!(v["status"], 413);
    }

    #[test]
    fn filenames() {
        for (sent, kept) in [
            ("/etc/passwd", "passwd"),
            ("..\\..\\x", "x"),
            ("résumé \"q\".txt", "résumé \"q\".txt"),
            ("a\u{0}b\u{85}c", "abc"),
            ("dir/", ""),
        ] {
            assert_eq!(clean_filename(sent), kept, "{sent:?}");
        }
    }
}
