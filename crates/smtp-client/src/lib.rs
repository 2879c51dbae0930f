//! The SMTP client of outbound delivery (RFC 5321 §3-4) as a sans-IO state machine, in the
//! shape of `proto-smtp`'s server session: the driver feeds the server's bytes to
//! [`Client::feed`], sends [`Client::take_output`], and follows [`Client::next_action`]
//! ([`Action::Read`], [`Action::StartTls`], [`Action::Ready`], [`Action::MessageDone`],
//! [`Action::Close`]). No sockets, no clock: tests and the fuzzer drive it directly, and
//! `portcullis-delivery` drives it over TCP and rustls.
//!
//! What it does: the greeting; EHLO, HELO only when EHLO is not understood (RFC 5321
//! §4.1.4); the extensions SIZE, PIPELINING, 8BITMIME, SMTPUTF8, STARTTLS, CHUNKING,
//! REQUIRETLS, DSN, ENHANCEDSTATUSCODES, AUTH ([`Capabilities`]); STARTTLS with a second
//! EHLO (RFC 3207); AUTH PLAIN or LOGIN for a smart host, only ever under TLS; per message
//! MAIL FROM with SIZE, BODY, SMTPUTF8, RET, ENVID and REQUIRETLS as the server supports
//! them, RCPT TO per recipient with NOTIFY and ORCPT when DSN is offered, DATA with
//! dot-stuffing or BDAT, RSET after a failed transaction, and several messages on one
//! connection; QUIT. Each recipient ends [`Disposition::Delivered`], `Temporary` or
//! `Permanent`, with its [`Reason`] (the server's [`Reply`], or what the client found).
//!
//! What the caller provides: a [`ClientConfig`] (EHLO name, [`TlsMode`], credentials for a
//! smart host, the [`ReplyLimits`]), the TLS handshake when asked (reporting whether the
//! certificate was validated: REQUIRETLS needs it), the timeouts of RFC 5321 §4.5.3.2
//! (choose by [`Client::waiting_for`]), and each [`Message`] with its envelope parameters.
//! Replies are bounded in line length, lines and bytes: a hostile server ends the session
//! with [`Cause::BadReply`], never with unbounded memory.
#![forbid(unsafe_code)]

mod capabilities;
pub mod content;
mod envelope;
mod outcome;
mod reply;
mod session;

pub use capabilities::Capabilities;
pub use envelope::{xtext_decode, xtext_encode, Message, MessageParams, Notify, OriginalRecipient, Recipient, Ret};
pub use outcome::{Cause, Disposition, LocalReason, Reason, SessionFailure, Stage};
pub use reply::{EnhancedCode, Reply, ReplyClass, ReplyError, ReplyLimits, ReplyReader};
pub use session::{
    Action, Client, ClientConfig, Credentials, Ending, MessageResult, NotReady, RecipientResult, TlsMode,
};
