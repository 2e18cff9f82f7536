//! tus' concatenation extension: a final upload made of partial ones
//! (`Upload-Concat: final;URL URL…`), as tus-js-client's `parallelUploads`
//! asks for it. A partial upload is created like any other, marked
//! `partial` (see [`super`]); here the final one is made whole at its
//! creation, from complete partial uploads, in the order given.

use super::{is_offset_stream, location};
use crate::app::{App, Outcome, TusAnswer};
use crate::model::error::{Error, Result};
use crate::model::http::{Request, percent_decode};
use crate::model::identifier::Identifier;
use crate::model::tus::parse_metadata;

impl App {
    /// `POST …/files` with `Upload-Concat: final;…`: 201 with the final
    /// upload's `Location`, complete and handed to the application like
    /// any completed upload. Its length is the sum of the partial uploads'
    /// (413 over `--max-size`), so it takes no `Upload-Length` and no body
    /// (400). A URL that does not name an upload of this pool, or names
    /// one whose MAC is wrong, is 404; one that names an upload that is
    /// not partial, or a partial one not complete yet, is 400. The partial
    /// uploads are kept (see docs/tus.md).
    pub(super) fn tus_final(
        &self,
        request: &mut Request<'_>,
        outcome: &mut Outcome,
        ids: &[String],
        value: String,
    ) -> Result<TusAnswer> {
        if request.header("Upload-Length").is_some()
            || request.header("Upload-Defer-Length").is_some()
        {
            return Err(Error::bad_request(
                "a final upload's length is the sum of its partial uploads': \
                 it takes no Upload-Length or Upload-Defer-Length",
            ));
        }
        let body = match request.content_length {
            Some(n) => n > 0,
            None => is_offset_stream(request),
        };
        if body {
            return Err(Error::bad_request("a final upload takes no body"));
        }
        let metadata = parse_metadata(request.header("Upload-Metadata").unwrap_or(""))?;
        // Every partial upload is checked, and the total judged, before
        // anything is made; each is opened again when its turn to be
        // copied comes, so that no more than one is open at a time.
        let mut parts = Vec::with_capacity(ids.len());
        let mut total = 0u64;
        for (n, text) in ids.iter().enumerate() {
            let id = self.partial_id(n, text)?;
            let (_, length) = self.pool.open_partial(&id).map_err(|e| naming(n, e))?;
            total = total.checked_add(length).ok_or_else(|| self.too_large())?;
            self.check_size(total)?;
            parts.push((id, length));
        }
        let _slot = self.take_slot()?;
        let id = self.pool.create_identifier()?;
        let shown = self.pool.format_identifier(&id);
        outcome.identifier = Some(shown.clone());
        let mut upload = self
            .pool
            .create_resumable(&id, Some(total), &metadata, Some(value))?;
        let copied = parts.iter().enumerate().try_for_each(|(n, (id, length))| {
            let (file, now) = self.pool.open_partial(id).map_err(|e| naming(n, e))?;
            if now != *length {
                return Err(naming(n, Error::conflict("it changed while being read")));
            }
            upload.append_file(&file, now)
        });
        if let Err(e) = copied {
            // Never left half made: a client may only ask again.
            let _ = upload.discard();
            return Err(e);
        }
        let status = upload.save()?;
        Ok(TusAnswer::Created {
            location: location(&request.path, &shown),
            offset: status.received.unwrap_or(0),
            completed: true,
            expires: None,
        })
    }

    /// The identifier `text` of the `n`th partial upload (as it stands in
    /// its URL, percent-encoded): 404
    /// when it is not one of this pool's (a MAC that does not verify).
    fn partial_id(&self, n: usize, text: &str) -> Result<Identifier> {
        self.pool
            .verify_identifier(&percent_decode(text))
            .map_err(|_| naming(n, Error::not_found("no such upload")))
    }
}

/// `err` about the `n`th (from 0) partial upload, saying which.
fn naming(n: usize, err: Error) -> Error {
    Error::new(
        err.kind(),
        format!("Upload-Concat: partial upload {}: {}", n + 1, err.message()),
    )
}
