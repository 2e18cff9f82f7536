//! The upload intercept: streams a multipart body into an [`Upload`], file
//! parts to disk as they arrive, form fields into its status.

use std::io::Read;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::multipart::Parser;
use crate::pool::Upload;
use crate::status::{clean_filename, strip_controls};

/// The most bytes of non-file form fields (names and values) kept.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Limits applied while receiving an upload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most body bytes accepted (`None`: no limit).
    pub max_size: Option<u64>,
    /// The most file parts accepted.
    pub max_files: usize,
    /// The minimum-progress window (see [`crate::multipart::MIN_PROGRESS`]):
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
pub fn receive(
    upload: &mut Upload,
    body: &mut dyn Read,
    boundary: &str,
    limits: Limits,
) -> Result<()> {
    let mut parser =
        Parser::new(body, boundary, limits.max_size).with_idle_timeout(limits.idle_timeout);
    let result = receive_parts(upload, &mut parser, limits);
    // Count what did arrive, in a failed status too.
    let counted = upload.progress(parser.received());
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
                let content_type = part
                    .content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream");
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
                field_bytes += part.name.len();
                let mut value = Vec::new();
                while let Some(chunk) = parser.read_chunk(&mut part)? {
                    field_bytes += chunk.len();
                    if field_bytes > MAX_FIELD_BYTES {
                        return Err(Error::too_large(format!(
                            "form fields larger than {MAX_FIELD_BYTES} bytes in all"
                        )));
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
