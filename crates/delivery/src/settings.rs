//! Everything outbound delivery is built from. A struct of its own so this crate needs no
//! config crate; the config crate maps `[delivery]`, `[relay]`, `[mta_sts]` and `[dane]` onto
//! it (keys in the crate documentation).

use portcullis_smtp_client::{Credentials, ReplyLimits};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Which address families to use, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPreference {
    Ipv4Only,
    Ipv6Only,
    /// IPv4 addresses first, then IPv6.
    PreferIpv4,
    /// IPv6 addresses first, then IPv4.
    PreferIpv6,
}

/// The waits of RFC 5321 §4.5.3.2, each the longest one reply may take (the defaults are the
/// RFC's), plus the connection, the TLS handshake and a minimum rate for sending content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// §4.5.3.2.1: 5 minutes.
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS, AUTH, RSET, QUIT.
    pub command: Duration,
    /// §4.5.3.2.2: 5 minutes.
    pub mail: Duration,
    /// §4.5.3.2.3: 5 minutes.
    pub rcpt: Duration,
    /// §4.5.3.2.4: 2 minutes for the 354.
    pub data_start: Duration,
    /// §4.5.3.2.5: 3 minutes for each block sent.
    pub data_block: Duration,
    /// §4.5.3.2.6: 10 minutes for the reply to the end of data.
    pub data_end: Duration,
    pub tls_handshake: Duration,
    /// Content is sent at least this fast (octets per second, on average) on top of
    /// `data_block`, so a server reading a byte at a time cannot hold a connection forever.
    pub min_data_rate: u64,
}

impl Timeouts {
    /// Every wait at most `limit` (a shorter reply timeout from the configuration).
    pub fn capped(self, limit: Duration) -> Timeouts {
        Timeouts {
            connect: self.connect.min(limit),
            greeting: self.greeting.min(limit),
            command: self.command.min(limit),
            mail: self.mail.min(limit),
            rcpt: self.rcpt.min(limit),
            data_start: self.data_start.min(limit),
            data_block: self.data_block.min(limit),
            data_end: self.data_end.min(limit),
            tls_handshake: self.tls_handshake.min(limit),
            min_data_rate: self.min_data_rate,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: minutes(5),
            command: minutes(5),
            mail: minutes(5),
            rcpt: minutes(5),
            data_start: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
            tls_handshake: Duration::from_secs(60),
            min_data_rate: 1024,
        }
    }
}

/// A smart host (`[relay]`): every message goes there, over TLS with a certificate valid for
/// `host`, with credentials if given.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (port 465, RFC 8314); otherwise STARTTLS, required.
    pub implicit_tls: bool,
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The EHLO name: this server's host name.
    pub helo_name: String,
    /// The SMTP port of exchangers (25; tests use another).
    pub port: u16,
    pub ip_preference: IpPreference,
    /// The source address of connections over IPv4 / IPv6 (`None`: the system chooses).
    pub source_ipv4: Option<Ipv4Addr>,
    pub source_ipv6: Option<Ipv6Addr>,
    pub timeouts: Timeouts,
    pub reply_limits: ReplyLimits,
    /// Exchangers tried per attempt, most preferred first.
    pub max_hosts: usize,
    /// Connections opened per attempt, over all exchangers and addresses.
    pub max_connections: usize,
    /// Use BDAT when the server offers CHUNKING.
    pub chunking: bool,
    /// Look up and honour MTA-STS policies.
    pub mta_sts: bool,
    /// The HTTPS port of `mta-sts.DOMAIN` (443; tests use another).
    pub mta_sts_port: u16,
    pub mta_sts_timeout: Duration,
    /// Look up and honour DANE TLSA records (needs a validating resolver: `[dns] servers`).
    pub dane: bool,
    pub relay: Option<Relay>,
    /// The longest one [`Courier::deliver`](crate::Courier::deliver) may take, over every
    /// exchanger and connection: each wait is cut to what is left of it, so a server that
    /// answers every command just inside its RFC 5321 wait cannot hold an attempt for hours.
    pub attempt_timeout: Duration,
}

impl DeliverySettings {
    /// The defaults, sending as `helo_name`.
    pub fn new(helo_name: &str) -> DeliverySettings {
        DeliverySettings {
            helo_name: helo_name.to_string(),
            port: 25,
            ip_preference: IpPreference::PreferIpv4,
            source_ipv4: None,
            source_ipv6: None,
            timeouts: Timeouts::default(),
            reply_limits: ReplyLimits::default(),
            max_hosts: 5,
            max_connections: 5,
            chunking: false,
            mta_sts: true,
            mta_sts_port: 443,
            mta_sts_timeout: Duration::from_secs(30),
            dane: true,
            relay: None,
            attempt_timeout: Duration::from_secs(30 * 60),
        }
    }
}
