//! Turns the settings (flags and `FILEUPLOAD_*` variables) into a ready
//! [`Pool`] and [`App`], or one line that says what is wrong.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::app::App;
use crate::app::intercept::Limits;
use crate::model::identifier::Signer;
use crate::model::units::{parse_duration, parse_size};
use crate::pool::Pool;

/// The settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pool directory.
    pub directory: PathBuf,
    /// Largest upload, as given (see [`parse_size`]).
    pub max_size: String,
    /// Most file parts per upload.
    pub max_files: usize,
    /// A dedicated upload server's URL.
    pub upload_url: Option<String>,
    /// File holding the signing key.
    pub key_file: Option<PathBuf>,
    /// The key itself (from `FILEUPLOAD_KEY`, never a flag).
    pub key: Option<Vec<u8>>,
    /// How long an unfinished tus upload lives after its last write, as
    /// given (see [`parse_duration`]).
    pub expire_after: String,
}

/// Everything a subcommand needs, checked.
#[derive(Debug)]
pub struct Config {
    /// The pool.
    pub pool: Pool,
    /// The limits for uploads.
    pub limits: Limits,
    /// The upload URL, ending in `/upload`, when uploads go elsewhere.
    pub upload_url: Option<String>,
}

impl Config {
    /// Checks the settings and opens the pool.
    pub fn load(settings: &Settings) -> Result<Config, String> {
        let max_size = parse_size(&settings.max_size).map_err(|e| format!("--max-size: {e}"))?;
        let expire_after =
            parse_duration(&settings.expire_after).map_err(|e| format!("--expire-after: {e}"))?;
        if expire_after.is_zero() {
            return Err("--expire-after: must be more than 0".into());
        }
        let pool = Pool::open(&settings.directory, Config::signer(settings)?)
            .map_err(|e| e.message().to_owned())?
            .with_expiry(expire_after);
        let upload_url = Config::upload_url(settings);
        Ok(Config {
            pool,
            limits: Limits {
                max_size,
                max_files: settings.max_files,
                ..Limits::default()
            },
            upload_url,
        })
    }

    /// The signer, from the key file (which wins) or `FILEUPLOAD_KEY`.
    /// The key file is read only when one is configured.
    pub fn signer(settings: &Settings) -> Result<Signer, String> {
        let key = match (&settings.key_file, &settings.key) {
            (Some(path), _) => Some(read_key_file(path)?),
            (None, Some(key)) if key.is_empty() => return Err("FILEUPLOAD_KEY is empty".into()),
            (None, key) => key.clone(),
        };
        Ok(Signer::new(key.as_deref()))
    }

    /// The upload URL, with `/upload` appended when it does not end so.
    pub fn upload_url(settings: &Settings) -> Option<String> {
        settings.upload_url.as_ref().map(|url| {
            let url = url.trim_end_matches('/');
            if url.ends_with("/upload") {
                url.to_owned()
            } else {
                format!("{url}/upload")
            }
        })
    }

    /// The app serving this configuration.
    pub fn app(self, max_uploads: usize) -> App {
        let takes_uploads = self.upload_url.is_none();
        App::new(self.pool, self.limits, takes_uploads, max_uploads)
    }
}

/// Reads a key file: its bytes, without the trailing line end. Refused when
/// other users may read it, or when empty.
fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(format!(
            "key file {} is accessible by other users: chmod o-rwx it",
            path.display()
        ));
    }
    let mut key = fs::read(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.is_empty() {
        return Err(format!("key file {} is empty", path.display()));
    }
    Ok(key)
}
