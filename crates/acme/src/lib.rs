//! Certificates from an ACME CA (RFC 8555, issue 18), so that a server on the internet gets
//! and renews a real certificate without its operator, and nobody learns to click through a
//! warning about a self-signed one.
//!
//! - [`Manager`] keeps one certificate (the host name and the `autoconfig.`/`mta-sts.` names
//!   of each domain) in service: obtained when there is none, renewed at two thirds of its
//!   lifetime, retried with doubling waits on failure while the old one stays; it reports
//!   [`AcmeEvent`]s and hands each new certificate to a swap hook.
//! - [`Challenges`] holds the answers while an order is validated: TLS-ALPN-01 (RFC 8737)
//!   through [`ChallengeResolver`] on the HTTPS listener, HTTP-01 (RFC 8555 §8.3) through
//!   [`Challenges::http01`] on port 80.
//! - [`CertStore`] keeps the account and the certificate in a directory, 0600, each replaced
//!   by one atomic rename.
//!
//! Built on instant-acme 0.8 with ring only (no aws-lc-rs: docs/dependencies.md pitfall 2);
//! the HTTPS client to the CA is ours (`client.rs`) so its TLS provider is explicit.
#![forbid(unsafe_code)]

mod challenges;
mod client;
mod issue;
mod renewal;
mod settings;
mod storage;
mod validity;

pub use challenges::{https_alpn_protocols, is_challenge_connection, ChallengeResolver, Challenges, ACME_TLS_ALPN};
pub use renewal::{urgency, AcmeEvent, Hooks, Manager, Urgency};
pub use settings::{AcmeSettings, ChallengeKind};
pub use storage::{certified_key, issued_from_pem, CertStore, Issued, ACCOUNT_FILE, CERTIFICATE_FILE};
pub use validity::{backoff, Validity};
