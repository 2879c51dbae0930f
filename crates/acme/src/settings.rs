//! What the manager is built from: the CA's directory, the contact, the names to certify, the
//! challenge to answer, and the schedule. A struct of its own so that this crate needs no
//! config crate; the server maps `[tls] acme = { directory, contact }` onto it.

use std::time::Duration;

use rustls_pki_types::CertificateDer;

/// Which challenge proves control of the names (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// RFC 8737: answered in the TLS handshake on port 443 (the HTTPS listener), with
    /// [`crate::ChallengeResolver`].
    TlsAlpn01,
    /// RFC 8555 §8.3: answered over plain HTTP on port 80, from [`crate::Challenges::http01`].
    Http01,
}

#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL (RFC 8555 §7.1.1).
    pub directory: String,
    /// Contact URLs for the account, `mailto:…` (RFC 8555 §7.3).
    pub contact: Vec<String>,
    /// The names the certificate covers; the first is the server's host name.
    pub names: Vec<String>,
    pub challenge: ChallengeKind,
    /// Renew when this fraction of the lifetime has passed (two thirds: a 90-day certificate
    /// is renewed with 30 days left, so failures have a month of retries before it expires).
    pub renew_at: (u32, u32),
    /// The first wait after a failed attempt; it doubles with each failure, up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How long the CA may take to validate and to issue, per order.
    pub order_timeout: Duration,
    /// CA certificates trusted for the directory's HTTPS beside the public roots (a private
    /// CA, or a test CA such as pebble's).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl AcmeSettings {
    /// Settings with the defaults: TLS-ALPN-01, renewal at 2/3, retries from a minute up to
    /// six hours, two minutes per order, public roots only.
    pub fn new(directory: impl Into<String>, contact: Vec<String>, names: Vec<String>) -> AcmeSettings {
        AcmeSettings {
            directory: directory.into(),
            contact,
            names,
            challenge: ChallengeKind::TlsAlpn01,
            renew_at: (2, 3),
            retry_first: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            order_timeout: Duration::from_secs(120),
            extra_roots: Vec::new(),
        }
    }
}
