//! The front ends: each translates its protocol to the core's request and
//! the core's answer back. The HTTP daemon and the FastCGI responder share
//! one listener and one driver ([`driver`]); CGI answers one request per
//! process.

pub mod cgi;
pub mod driver;
pub mod fastcgi;
pub mod http;
pub mod listen;
pub mod signal;
