//! `[limits]`: how much the whole server, one network, one connection and one message may
//! take, and how long a client may stay silent or take to log in. The defaults meet the RFC
//! minimums cited beside them.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::units::Size;

const MAX_CONNECTIONS: usize = 2000;
const MAX_CONNECTIONS_PER_IP: usize = 20;
/// A household's or a small office's IPv6 allocation: by default, a few /64s' worth.
const PER_56_IN_64S: usize = 3;
/// A site's IPv6 allocation (RFC 6177): by default, ten /64s' worth.
const PER_48_IN_64S: usize = 10;
/// By default a tenth of `max_connections` is kept for the accounts' owners.
const RESERVED_FOR_OWNERS_DIVISOR: usize = 10;
/// Long enough for a client to connect, start TLS and log in over a slow link; short enough
/// that a connection that never logs in cannot hold a slot for the 30 minutes IMAP allows a
/// logged-in session.
const LOGIN_TIMEOUT: &str = "1m";
const MAX_MESSAGE_SIZE: u64 = 50 << 20;
const MAX_RECIPIENTS: usize = 100;
/// RFC 4954 §4 lets an AUTH line carry 12288 octets of SASL; 4 KiB is ample for PLAIN.
const MAX_LINE_LENGTH: usize = 4096;
const MAX_COMMANDS: u64 = 10_000;
const MAX_AUTH_FAILURES: u32 = 3;
/// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
const SMTP_IDLE_TIMEOUT: &str = "5m";
/// RFC 1939 §3: an autologout timer of at least 10 minutes.
const POP3_IDLE_TIMEOUT: &str = "10m";
/// RFC 9051 §5.4: an autologout timer of at least 30 minutes.
const IMAP_IDLE_TIMEOUT: &str = "30m";
const MAX_IMAP_SESSIONS_PER_ACCOUNT: usize = 20;
/// Far more folders than people keep; every LIST reads them all, so one account must not make
/// its LISTs as slow as it likes.
const MAX_MAILBOXES_PER_ACCOUNT: usize = 1000;
/// The mailboxes every account is created with (INBOX and the five special-use ones).
const DEFAULT_MAILBOXES: usize = 6;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// From one IPv4 address or one IPv6 /64.
    pub max_connections_per_ip: usize,
    /// From one IPv6 /56, and from one /48.
    pub max_connections_per_56: usize,
    pub max_connections_per_48: usize,
    /// Of `max_connections`, kept for addresses accounts logged in from (and trusted networks).
    pub reserved_for_owners: usize,
    /// How long a connection may take to log in, from its opening (every protocol).
    pub login_timeout: Duration,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Longest command line, CRLF included (SASL responses ride on command lines).
    pub max_line_length: usize,
    /// Commands one connection may send before it is closed.
    pub max_commands: u64,
    /// Failed authentications one connection may make before it is closed.
    pub max_auth_failures: u32,
    pub smtp_idle_timeout: Duration,
    pub pop3_idle_timeout: Duration,
    /// IMAP autologout, IDLE included (RFC 9051 §5.4: at least 30 minutes).
    pub imap_idle_timeout: Duration,
    /// Concurrent IMAP sessions one account may have.
    pub max_imap_sessions_per_account: usize,
    /// Mailboxes one account may have (parents included), and as many subscriptions.
    pub max_mailboxes_per_account: usize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_connections_per_56: Option<usize>,
    max_connections_per_48: Option<usize>,
    reserved_for_owners: Option<usize>,
    login_timeout: Option<String>,
    max_message_size: Option<Size>,
    max_recipients: Option<usize>,
    max_line_length: Option<usize>,
    max_commands: Option<u64>,
    max_auth_failures: Option<u32>,
    smtp_idle_timeout: Option<String>,
    pop3_idle_timeout: Option<String>,
    imap_idle_timeout: Option<String>,
    max_imap_sessions_per_account: Option<usize>,
    max_mailboxes_per_account: Option<usize>,
}

impl RawLimits {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Limits, ConfigError> {
        let max_connections = c.positive("limits.max_connections", self.max_connections, MAX_CONNECTIONS)?;
        let per_ip =
            c.positive("limits.max_connections_per_ip", self.max_connections_per_ip, MAX_CONNECTIONS_PER_IP)?;
        let per_56 =
            c.positive("limits.max_connections_per_56", self.max_connections_per_56, per_ip * PER_56_IN_64S)?;
        let limits = Limits {
            max_connections,
            max_connections_per_ip: per_ip,
            max_connections_per_56: per_56,
            max_connections_per_48: c.positive(
                "limits.max_connections_per_48",
                self.max_connections_per_48,
                (per_ip * PER_48_IN_64S).max(per_56),
            )?,
            reserved_for_owners: self.reserved_for_owners.unwrap_or(max_connections / RESERVED_FOR_OWNERS_DIVISOR),
            login_timeout: c.duration("limits.login_timeout", self.login_timeout, LOGIN_TIMEOUT)?,
            max_message_size: c.size("limits.max_message_size", self.max_message_size, MAX_MESSAGE_SIZE)?,
            max_recipients: c.positive("limits.max_recipients", self.max_recipients, MAX_RECIPIENTS)?,
            max_line_length: self.max_line_length.unwrap_or(MAX_LINE_LENGTH),
            max_commands: c.positive("limits.max_commands", self.max_commands, MAX_COMMANDS)?,
            max_auth_failures: c.positive("limits.max_auth_failures", self.max_auth_failures, MAX_AUTH_FAILURES)?,
            smtp_idle_timeout: c.duration("limits.smtp_idle_timeout", self.smtp_idle_timeout, SMTP_IDLE_TIMEOUT)?,
            pop3_idle_timeout: c.duration("limits.pop3_idle_timeout", self.pop3_idle_timeout, POP3_IDLE_TIMEOUT)?,
            imap_idle_timeout: c.duration("limits.imap_idle_timeout", self.imap_idle_timeout, IMAP_IDLE_TIMEOUT)?,
            max_imap_sessions_per_account: c.positive(
                "limits.max_imap_sessions_per_account",
                self.max_imap_sessions_per_account,
                MAX_IMAP_SESSIONS_PER_ACCOUNT,
            )?,
            max_mailboxes_per_account: self.max_mailboxes_per_account.unwrap_or(MAX_MAILBOXES_PER_ACCOUNT),
        };
        if limits.max_line_length < 512 {
            return Err(c.invalid("limits.max_line_length", "must be at least 512 (RFC 5321 §4.5.3.1.4)"));
        }
        if limits.max_mailboxes_per_account < DEFAULT_MAILBOXES {
            return Err(c.invalid(
                "limits.max_mailboxes_per_account",
                "must be at least 6 (every account gets INBOX and five special-use mailboxes)",
            ));
        }
        if limits.max_message_size < 1024 {
            return Err(c.invalid("limits.max_message_size", "must be at least 1KiB"));
        }
        if limits.max_connections_per_ip > limits.max_connections {
            return Err(c.invalid("limits.max_connections_per_ip", "cannot be larger than limits.max_connections"));
        }
        if limits.max_connections_per_56 < limits.max_connections_per_ip {
            return Err(
                c.invalid("limits.max_connections_per_56", "cannot be smaller than limits.max_connections_per_ip")
            );
        }
        if limits.max_connections_per_48 < limits.max_connections_per_56 {
            return Err(
                c.invalid("limits.max_connections_per_48", "cannot be smaller than limits.max_connections_per_56")
            );
        }
        if limits.reserved_for_owners >= limits.max_connections {
            return Err(c.invalid("limits.reserved_for_owners", "must be smaller than limits.max_connections"));
        }
        Ok(limits)
    }
}
