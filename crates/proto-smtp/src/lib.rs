//! SMTP submission as a sans-IO state machine (RFC 6409, 5321, 3207, 4954, 3030, 6531, 8314).
//!
//! The session is fed bytes and answers with bytes; whenever it needs the outside world (a TLS
//! handshake, a credential check, a recipient lookup, durable storage) it returns an
//! [`Action`] and waits for the driver to report the outcome. It never does I/O and never
//! blocks, so tests and fuzzers drive it directly.
//!
//! Command lines are parsed by `smtp-proto` (a fuzzed parser from the Stalwart project);
//! DATA dot-unstuffing and end detection use its `DataReceiver`. Everything else (the rules
//! of submission, the STARTTLS gate, the limits) is here.
#![forbid(unsafe_code)]

mod message;
mod refusal;
mod reply;
mod session;
mod types;

pub use message::{Envelope, Received};
pub use refusal::refused_connection;
pub use session::{Action, Fact, Session};
pub use types::{AccountId, AuthOutcome, Config, DeliveryOutcome, Peer, Principal, RecipientOutcome};
