//! Load generators for Portcullis benchmarks (docs/benchmarks.md): `portcullis-bench` drives SMTP
//! submission, `portcullis-imap-bench` drives IMAP. Both speak implicit TLS through [`tls`].
#![forbid(unsafe_code)]

pub mod imap;
pub mod smtp;
pub mod stats;
pub mod tls;

pub use tls::{Failure, Target, TlsArgs};
