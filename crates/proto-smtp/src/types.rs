//! The settings and outcomes the driver and the session exchange: listener settings, the peer,
//! the authenticated account, and the results of the actions the session asks for.

use std::net::IpAddr;

/// Opaque account handle, as the driver's store knows it.
pub type AccountId = i64;

/// Whose mail a listener takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 465 and 587 (RFC 6409): clients log in and send as themselves; on 587 nothing but
    /// EHLO/HELO/STARTTLS/NOOP/RSET/QUIT before STARTTLS.
    Submission,
    /// 25 (RFC 5321): other servers deliver mail for local recipients. STARTTLS is offered and
    /// plaintext allowed; AUTH is never offered nor accepted. The client is checked before the
    /// greeting ([`crate::Action::CheckClient`]), the sender at MAIL FROM
    /// ([`crate::Action::CheckSender`]); early talkers and clients that pipeline before
    /// PIPELINING was offered are refused.
    Mx,
}

/// Per-listener and per-connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub role: Role,
    /// TLS from the first byte (465); otherwise STARTTLS, required or offered by the role.
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
    /// The client's forward-confirmed reverse DNS name, for the Received header (port 25).
    pub name: Option<String>,
}

/// The authenticated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub address: String,
    /// The account's aliases (lower case): it may send from these too, in MAIL FROM and in
    /// the message's From: and Sender:.
    pub aliases: Vec<String>,
}

impl Principal {
    /// Whether `address` is the account's own or one of its aliases. Domains compare
    /// case-insensitively, and local parts do too, since accounts and aliases have one
    /// lower-case spelling.
    pub fn owns(&self, address: &str) -> bool {
        let address = address.to_lowercase();
        address == self.address || self.aliases.contains(&address)
    }
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
    /// Not one of our domains, for an authenticated submitter: queued for delivery to its
    /// domain. Only a logged-in session on 465/587 takes it; anywhere else (port 25, before
    /// AUTH) it is refused as [`RecipientOutcome::NotLocal`], so the MX never relays.
    Remote,
    MailboxFull,
    /// The client's source sent more recipients per minute than the guard allows.
    RateLimited,
    TemporaryFailure,
}

/// A refusal decided outside the session (the sender checks, the verdict on a message): a
/// reply code, its RFC 3463 enhanced code and one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
}

/// What the checks of a port-25 client at connect found ([`crate::Action::CheckClient`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientOutcome {
    /// Refuse the client: the greeting is `554` with this text (RFC 5321 §3.1), and nothing
    /// but QUIT is accepted after it (a DNSBL listing).
    pub refuse: Option<String>,
    /// Its forward-confirmed reverse DNS name, for the Received header.
    pub name: Option<String>,
}

/// What the checks of MAIL FROM on port 25 decided ([`crate::Action::CheckSender`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderOutcome {
    Accept,
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Durably stored for every recipient.
    Stored,
    /// Storing it would exceed this recipient's allowance; stored for nobody.
    MailboxFull(String),
    /// The account reached its sending limit; not stored.
    SendingLimit,
    /// Refused by a decision about the message (port 25: the sender-authentication verdict,
    /// or a temporary DNS failure); not stored.
    Refused(Refusal),
    TemporaryFailure,
}
