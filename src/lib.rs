//! `fileupload` takes browser file uploads (`multipart/form-data`), streams
//! them into a pool directory, reports their progress by identifier, and
//! answers with a JSON description of what it stored.
//!
//! The crate is one protocol-neutral core ([`app::App::handle`] over the
//! models in [`http`]) with thin front ends ([`daemon`]), the pool
//! ([`pool`]) that several processes may share, and the upload intercept
//! ([`intercept`]) over a swappable multipart parser ([`multipart`]).
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cgi;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod fastcgi;
pub mod forward;
pub mod http;
pub mod identifier;
pub mod intercept;
pub mod log;
pub mod multipart;
pub mod pool;
mod priority;
pub mod server;
pub mod signal;
pub mod status;
mod store;
pub mod units;

pub use error::{Error, Result};
pub use pool::Pool;
