//! SMTP as a sans-IO state machine: submission (RFC 6409, 4954, 8314) on 465 and 587, and mail
//! from other servers (RFC 5321) on 25, with STARTTLS (RFC 3207), CHUNKING (RFC 3030),
//! SMTPUTF8 (RFC 6531), PIPELINING (RFC 2920) and REQUIRETLS (RFC 8689).
//!
//! The session is fed bytes and answers with bytes; whenever it needs the outside world (a TLS
//! handshake, a credential check, a recipient lookup, durable storage) it returns an
//! [`Action`] and waits for the driver to report the outcome. It never does I/O and never
//! blocks, so tests and fuzzers drive it directly.
//!
//! Command lines are parsed by `smtp-proto` (a fuzzed parser from the Stalwart project);
//! DATA dot-unstuffing and end detection use its `DataReceiver`. Everything else (the rules
//! of submission and of an MX, the STARTTLS gate, the limits) is here. Which rules apply is the
//! listener's [`Role`].
#![forbid(unsafe_code)]

mod author;
mod message;
mod refusal;
mod reply;
mod session;
mod types;

pub use message::{with_return_path, Envelope, Received, RemoteRecipient};
pub use refusal::refused_connection;
pub use session::{Action, Fact, Session};
pub use types::{
    AccountId, AuthOutcome, ClientOutcome, Config, DeliveryOutcome, Peer, Principal, RecipientOutcome, Refusal, Role,
    SenderOutcome,
};
