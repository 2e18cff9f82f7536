//! `fileupload` takes browser file uploads (`multipart/form-data`), streams
//! them into a pool directory, reports their progress by identifier, and
//! answers with a JSON description of what it stored.
//!
//! The tree shows the architecture, each layer using only those below it:
//!
//! - [`model`]: plain data and parsers (errors, identifiers, status,
//!   multipart, the request and response models);
//! - [`pool`]: the pool directory that several processes may share;
//! - [`app`]: the protocol-neutral core ([`app::App::handle`]), with the
//!   upload intercept and the demo pages;
//! - [`handoff`]: the application an upload is handed to (`--backend`,
//!   `--exec`);
//! - [`front`]: the front ends (HTTP daemon, CGI, FastCGI) and the driver
//!   they share;
//! - [`cli`], [`commands`], [`config`], [`log`]: the program around them.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod front;
pub mod handoff;
pub mod log;
pub mod model;
pub mod pool;

pub use model::error::{Error, Result};
pub use pool::Pool;
