//! What became of a message and of a session, in types the caller branches on: per recipient
//! delivered / temporary (retry) / permanent (bounce) with the reason (the server's reply, or
//! what the client itself found), and why a session ended early.

use crate::reply::{EnhancedCode, Reply, ReplyClass, ReplyError};
use std::fmt;

/// The command (or the wait) a reply or a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    MailFrom,
    RcptTo,
    /// The reply to DATA (354 expected).
    Data,
    /// Sending the content and waiting for the reply to its end ("." or BDAT LAST).
    DataEnd,
    Rset,
    Quit,
}

impl Stage {
    /// The name a bounce uses ("in reply to RCPT TO command").
    pub fn command(&self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::DataEnd => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        }
    }
}

/// Whether a recipient is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The next hop took responsibility (RFC 5321 §6.1).
    Delivered,
    /// Try again later.
    Temporary,
    /// Give up and tell the sender.
    Permanent,
}

/// Why a recipient has the disposition it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The server's reply to a command of this transaction.
    Reply { stage: Stage, reply: Reply },
    /// The client refused to send, before asking the server.
    Local(LocalReason),
    /// The session failed before the transaction finished.
    Session(SessionFailure),
}

/// Reasons the client itself finds for not sending a message to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalReason {
    /// UTF-8 addresses or headers, and the server lacks SMTPUTF8 (RFC 6531 §3.2).
    NeedsSmtpUtf8,
    /// 8-bit content, and the server lacks 8BITMIME (RFC 6152 §3: no conversion is done).
    NeedsEightBitMime,
    /// Bigger than the server's SIZE (RFC 1870 §6).
    TooBig { limit: u64 },
    /// REQUIRETLS (RFC 8689 §4.2.1): the TLS is not validated, or the server lacks REQUIRETLS.
    RequireTlsUnmet,
    /// An address with characters that cannot go on a command line.
    BadAddress,
}

/// Why a session ended before its QUIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFailure {
    pub stage: Stage,
    pub cause: Cause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A reply that does not let the session go on (a 554 greeting, EHLO and HELO refused,
    /// a 421 at any point).
    Reply(Reply),
    /// A reply the client could not read (too long, too many lines, malformed).
    BadReply(ReplyError),
    /// A reply no command asked for, or a code that makes no sense where it came.
    Unexpected(Reply),
    /// The server closed the connection.
    Closed,
    /// A wait outlasted its limit (the driver's timeouts, RFC 5321 §4.5.3.2).
    TimedOut,
    /// TLS is required and the server does not offer STARTTLS.
    StartTlsUnavailable,
    /// TLS is required and the server refused STARTTLS.
    StartTlsRefused(Reply),
    /// The TLS handshake failed (the driver's words: certificate, protocol, alert).
    Tls(String),
    /// Credentials are configured and the server offers neither PLAIN nor LOGIN.
    AuthUnavailable,
    /// Credentials would have gone over a connection without TLS: never sent.
    AuthWithoutTls,
    /// The server refused the credentials.
    AuthRejected(Reply),
    /// The connection could not be made (the driver's words).
    Connect(String),
}

impl Reason {
    /// The RFC 3463 status a notice shows.
    pub fn status(&self, disposition: Disposition) -> EnhancedCode {
        match self {
            Reason::Reply { reply, .. } => reply.status(),
            Reason::Local(local) => local.status(),
            Reason::Session(failure) => failure.status(disposition),
        }
    }

    /// The server's reply, if the reason is one (for a notice's Diagnostic-Code).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Reason::Reply { reply, .. } => Some(reply),
            Reason::Session(SessionFailure { cause, .. }) => cause.reply(),
            Reason::Local(_) => None,
        }
    }
}

impl LocalReason {
    pub fn status(&self) -> EnhancedCode {
        match self {
            LocalReason::NeedsSmtpUtf8 => EnhancedCode::new(5, 6, 7), // RFC 6531 §3.5
            LocalReason::NeedsEightBitMime => EnhancedCode::new(5, 6, 3), // RFC 3463: conversion required
            LocalReason::TooBig { .. } => EnhancedCode::new(5, 3, 4), // RFC 3463: too big for system
            LocalReason::RequireTlsUnmet => EnhancedCode::new(5, 7, 30), // RFC 8689 §5
            LocalReason::BadAddress => EnhancedCode::new(5, 1, 3),    // RFC 3463: bad address syntax
        }
    }

    /// Every local reason is permanent for the server that caused it; whether the message
    /// fails for good is the route's decision (another exchanger may do better).
    pub fn disposition(&self) -> Disposition {
        Disposition::Permanent
    }
}

impl SessionFailure {
    /// Whether the session's failure means the message can never go this way. Only a 5yz
    /// reply refusing credentials (a smart host's verdict) could be; even then the operator
    /// fixes the configuration and the mail should wait, as Postfix's
    /// `smtp_sasl_auth_soft_bounce` does: every session failure is temporary for the
    /// message. A 5yz greeting or EHLO sends the client to the next exchanger (RFC 5321
    /// §3.1 lets a server refuse service; another may serve).
    pub fn disposition(&self) -> Disposition {
        Disposition::Temporary
    }

    pub fn status(&self, _disposition: Disposition) -> EnhancedCode {
        match &self.cause {
            Cause::Reply(reply) | Cause::AuthRejected(reply) => {
                // Keep the server's detail but the class of what it means here: temporary.
                let status = reply.status();
                EnhancedCode::new(4, status.subject, status.detail)
            }
            Cause::Closed | Cause::TimedOut | Cause::BadReply(_) | Cause::Unexpected(_) => EnhancedCode::new(4, 4, 2),
            Cause::Connect(_) => EnhancedCode::new(4, 4, 1), // RFC 3463: no answer from host
            Cause::StartTlsUnavailable | Cause::StartTlsRefused(_) | Cause::Tls(_) => EnhancedCode::new(4, 7, 5),
            Cause::AuthUnavailable | Cause::AuthWithoutTls => EnhancedCode::new(4, 7, 8),
        }
    }
}

impl Cause {
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Cause::Reply(reply)
            | Cause::Unexpected(reply)
            | Cause::StartTlsRefused(reply)
            | Cause::AuthRejected(reply) => Some(reply),
            _ => None,
        }
    }
}

/// The disposition a transaction reply gives a recipient (RFC 5321 §4.2.1).
pub(crate) fn disposition_of(reply: &Reply) -> Disposition {
    match reply.class() {
        ReplyClass::Positive => Disposition::Delivered,
        ReplyClass::Permanent => Disposition::Permanent,
        ReplyClass::Transient | ReplyClass::Intermediate => Disposition::Temporary,
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Reply(reply) => write!(f, "the server replied {reply}"),
            Cause::BadReply(err) => write!(f, "{err}"),
            Cause::Unexpected(reply) => write!(f, "unexpected reply {reply}"),
            Cause::Closed => f.write_str("the server closed the connection"),
            Cause::TimedOut => f.write_str("the server did not answer in time"),
            Cause::StartTlsUnavailable => f.write_str("TLS is required and the server does not offer STARTTLS"),
            Cause::StartTlsRefused(reply) => write!(f, "TLS is required and the server refused STARTTLS: {reply}"),
            Cause::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            Cause::AuthUnavailable => f.write_str("the server offers neither AUTH PLAIN nor AUTH LOGIN"),
            Cause::AuthWithoutTls => f.write_str("credentials are never sent without TLS"),
            Cause::AuthRejected(reply) => write!(f, "the server refused the credentials: {reply}"),
            Cause::Connect(why) => write!(f, "connection failed: {why}"),
        }
    }
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.cause, self.stage.command())
    }
}

impl fmt::Display for LocalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalReason::NeedsSmtpUtf8 => f.write_str("the message needs SMTPUTF8, which the server does not offer"),
            LocalReason::NeedsEightBitMime => {
                f.write_str("the message has 8-bit content and the server does not offer 8BITMIME")
            }
            LocalReason::TooBig { limit } => {
                write!(f, "the message is bigger than the server's limit of {limit} octets")
            }
            LocalReason::RequireTlsUnmet => {
                f.write_str("REQUIRETLS: no validated TLS to a server that offers REQUIRETLS")
            }
            LocalReason::BadAddress => f.write_str("the address cannot be sent on an SMTP command line"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Reply { stage, reply } => write!(f, "{reply} (in reply to {})", stage.command()),
            Reason::Local(local) => write!(f, "{local}"),
            Reason::Session(failure) => write!(f, "{failure}"),
        }
    }
}
