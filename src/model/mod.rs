//! The plain data and parsers every other part builds on: errors with
//! their HTTP status, identifiers, the status document, the multipart
//! parser, the request and response models, the tus protocol's headers,
//! and units of size and time.
//! Nothing here does I/O of its own.

pub mod error;
pub mod http;
pub mod identifier;
pub mod multipart;
pub mod status;
pub mod tus;
pub mod units;
