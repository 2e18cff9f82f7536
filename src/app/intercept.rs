//! The upload intercept: streams a multipart body into an [`Upload`], file
//! parts to disk as they arrive, form fields into its status.

use std::io::Read;
use std::time::Duration;

use crate::model::error::{Error, Result};
use crate::model::multipart::Parser;
use crate::model::status::{DEFAULT_CONTENT_TYPE, clean_filename, strip_controls};
use crate::pool::Upload;

/// The most bytes of non-file form fields kept: names and values, and one
/// byte more per field, so that a flood of empty fields is bounded too.
pub(crate) const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Limits applied while receiving an upload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most body bytes accepted (`None`: no limit).
    pub max_size: Option<u64>,
    /// The most file parts accepted.
    pub max_files: usize,
    /// The minimum-progress window (see [`crate::model::multipart::MIN_PROGRESS`]):
    /// a client that sends less than that in this long is cut off (408).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: None,
            max_files: 20,
            idle_timeout: None,
        }
    }
}

/// Receives a multipart body into `upload`. On error the caller fails the
/// upload; `upload` says how far it got.
pub(crate) fn receive(
    upload: &mut Upload,
    body: &mut dyn Read,
    boundary: &str,
    limits: Limits,
) -> Result<()> {
    let mut parser =
        Parser::new(body, boundary, limits.max_size).with_idle_timeout(limits.idle_timeout);
    let result = receive_parts(upload, &mut parser, limits).and_then(|()| {
        // A body cut short after a complete multipart form is still a
        // request that did not arrive whole.
        match upload.status().size {
            Some(Some(size)) if size != parser.received() => Err(Error::bad_request(format!(
                "request body of {} bytes, but its Content-Length said {size}",
                parser.received()
            ))),
            _ => Ok(()),
        }
    });
    // Count what did arrive, in a failed status too.
    let counted = upload.progress(parser.received());
    drop(parser);
    crate::pool::store::release_memory();
    result.and(counted)
}

fn receive_parts(upload: &mut Upload, parser: &mut Parser<'_>, limits: Limits) -> Result<()> {
    let mut field_bytes = 0usize;
    let mut files = 0usize;
    while let Some(mut part) = parser.next_part()? {
        upload.progress(parser.received())?;
        match part.filename.as_deref() {
            // A file input left empty: browsers send the part with an
            // empty file name and no content; there is no file to keep.
            Some("") => while parser.read_chunk(&mut part)?.is_some() {},
            Some(name) => {
                files += 1;
                if files > limits.max_files {
                    return Err(Error::too_large(format!(
                        "too many files: at most {} per upload",
                        limits.max_files
                    )));
                }
                let content_type = part.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
                let mut writer = upload.create_file(
                    &part.name,
                    &clean_filename(name),
                    &strip_controls(content_type),
                )?;
                while let Some(chunk) = parser.read_chunk(&mut part)? {
                    writer.write(&chunk)?;
                    upload.progress(parser.received())?;
                }
                upload.complete_file(writer)?;
            }
            None => {
                field_bytes += part.name.len() + 1;
                if field_bytes > MAX_FIELD_BYTES {
                    return Err(fields_too_large());
                }
                let mut value = Vec::new();
                while let Some(chunk) = parser.read_chunk(&mut part)? {
                    field_bytes += chunk.len();
                    if field_bytes > MAX_FIELD_BYTES {
                        return Err(fields_too_large());
                    }
                    value.extend_from_slice(&chunk);
                }
                upload.add_field(
                    part.name.clone(),
                    String::from_utf8_lossy(&value).into_owned(),
                );
            }
        }
    }
    parser.finish()
}

fn fields_too_large() -> Error {
    Error::too_large(format!(
        "form fields larger than {MAX_FIELD_BYTES} bytes in all"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::identifier::{Identifier, Signer};
    use crate::pool::Pool;

    #[test]
    fn a_flood_of_empty_fields_is_bounded() {
        let dir = std::env::temp_dir().join(format!("fileupload-fields-{}", std::process::id()));
        let pool = Pool::open(&dir, Signer::new(None)).unwrap();
        let id = Identifier::parse_id("empty-fields").unwrap();
        let mut body =
            b"--B\r\nContent-Disposition: form-data; name=\"\"\r\n\r\n\r\n".repeat(70_000);
        body.extend_from_slice(b"--B--\r\n");
        let mut upload = pool.begin_upload(&id, None).unwrap();
        let e = receive(&mut upload, &mut &body[..], "B", Limits::default()).unwrap_err();
        assert_eq!(e.status(), 413, "{e}");
        upload.fail(&e);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
