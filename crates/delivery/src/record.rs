//! What one delivery attempt yields besides per-recipient outcomes: one record per connection
//! tried (for the `delivery` event: which host and address, which TLS policy applied, the TLS
//! version and cipher, the certificate verdict, how the session ended), and the per-recipient
//! report the queue turns into retries and notices.

use crate::route::RouteError;
use crate::tls::{CertificateCheck, PolicyKind, TlsFailure};
use portcullis_smtp_client::{Disposition, EnhancedCode, Reason, Reply};
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;

/// The TLS of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsDetails {
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// The IANA-style suite name rustls gives, e.g. "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
}

/// One connection (or one exchanger skipped by policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The destination domain (or the smart host's name).
    pub domain: String,
    /// The exchanger (MX host) or smart host.
    pub host: String,
    pub address: Option<SocketAddr>,
    pub policy: PolicyKind,
    pub tls: Option<TlsDetails>,
    pub certificate: CertificateCheck,
    /// What went wrong with TLS in RFC 8460 terms (also when the policy only reports).
    pub tls_failure: Option<TlsFailure>,
    pub outcome: AttemptOutcome,
    /// Messages whose outcome this session decided.
    pub messages: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum AttemptOutcome {
    /// The session ended with QUIT.
    Completed,
    /// The session ended early (the client's words).
    SessionFailed(String),
    ConnectFailed(String),
    /// Not connected: the policy excludes this exchanger.
    Skipped(String),
}

/// Why a recipient has its disposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// From the SMTP session: the server's reply, what the client found, or how the session
    /// failed.
    Smtp(Reason),
    /// No route to the domain.
    Route(RouteError),
    /// The TLS policy allowed no exchanger (MTA-STS enforce without a matching MX, DANE
    /// without an answer about its TLSA records).
    Policy(String),
    /// No connection was left in this attempt's budget for it.
    NotAttempted,
    /// The attempt's time (`delivery.attempt_timeout`) ran out before it was settled.
    OutOfTime(std::time::Duration),
}

/// One recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    pub address: String,
    pub disposition: Disposition,
    /// The RFC 3463 status for a notice.
    pub status: EnhancedCode,
    pub why: Why,
    /// The exchanger that answered, if one did (a notice's Remote-MTA).
    pub remote_mta: Option<String>,
    /// The exchanger offers DSN: for a recipient with NOTIFY=SUCCESS, no "relayed" notice is
    /// owed (RFC 3461 §4.1).
    pub peer_offers_dsn: bool,
}

impl Why {
    /// The server's reply, for a notice's Diagnostic-Code.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Why::Smtp(reason) => reason.reply(),
            _ => None,
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Smtp(reason) => write!(f, "{reason}"),
            Why::Route(e) => write!(f, "{e}"),
            Why::Policy(why) => f.write_str(why),
            Why::NotAttempted => f.write_str("no connection was attempted for it this time"),
            Why::OutOfTime(limit) => write!(f, "the delivery attempt ran out of its time ({limit:?})"),
        }
    }
}
