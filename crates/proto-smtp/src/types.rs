//! The settings and outcomes the driver and the session exchange: listener settings, the peer,
//! the authenticated account, and the results of the actions the session asks for.

use std::net::IpAddr;

/// Opaque account handle, as the driver's store knows it.
pub type AccountId = i64;

/// Per-listener and per-connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    /// `false` on port 587: nothing but EHLO/HELO/STARTTLS/NOOP/RSET/QUIT until STARTTLS.
    pub implicit_tls: bool,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_commands: u64,
    pub max_auth_failures: u32,
    /// Invalid or refused commands tolerated before the connection is closed.
    pub max_errors: u32,
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    /// Unique per connection; used in Received and generated Message-ID headers.
    pub session_id: String,
    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384" for the Received header, once TLS is up.
    pub tls: Option<String>,
    /// The TLS connection's `tls-exporter` value, for SCRAM-SHA-256-PLUS.
    pub channel_binding: Option<Vec<u8>>,
}

/// The authenticated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    InvalidCredentials,
    /// Our side failed; the client may try again later.
    TemporaryFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientOutcome {
    Local(AccountId),
    UnknownUser,
    /// Not one of our domains, and relaying is not enabled.
    NotLocal,
    MailboxFull,
    TemporaryFailure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Durably stored for every recipient.
    Stored,
    /// Storing it would exceed this recipient's allowance; stored for nobody.
    MailboxFull(String),
    /// The account reached its sending limit; not stored.
    SendingLimit,
    TemporaryFailure,
}
