//! One event stream (docs/architecture.md §7). Every connection, handshake, authentication and delivery is
//! reported as one typed [`Event`]; logs (and later metrics, anomaly detection and alerts) are
//! consumers of the same stream, so what is logged and what is counted can never disagree.
//!
//! Emitting is synchronous and cheap: each [`Sink`] must not block (a log sink hands the line
//! to a writer thread, a metric sink bumps a counter).
#![forbid(unsafe_code)]

use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod escape;
mod log;
mod outbound;
mod rotate;

pub use log::{LogFormat, LogSink};
pub use outbound::{DeliveryReason, DeliveryResult, OutboundTlsPolicy, OutboundTlsResult, RecipientOutcomes};
pub use rotate::RotatingFile;

/// Which gate a connection came through, and everything that varies per gate: one table in
/// its own crate (`portcullis-listeners`), which the config reads too.
pub use portcullis_listeners::{self as listeners, Listener, Protocol, TlsMode};

/// Why a connection was refused before any protocol or TLS work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// The firewall rules do not admit the address on this listener.
    Firewall,
    /// The address is banned.
    Banned,
    TooManyConnections,
    TooManyConnectionsFromPeer,
    /// The address opened more connections within a minute than its listener allows
    /// (`smtp.connections_per_minute`).
    TooManyConnectionsPerMinute,
    ShuttingDown,
}

/// Why a connection on a listener that expects a PROXY header (`[proxy]`) was closed before
/// the guard saw its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyRefusal {
    /// Not from `proxy.trusted_proxies`: its header would be a forgery anyone could write.
    UntrustedSource,
    /// The connection ended, or sent something other than a PROXY header, first.
    MissingHeader,
    /// A PROXY header that does not parse, is too long, or names no usable TCP address.
    BadHeader,
    /// No complete header within `proxy.header_timeout`.
    Timeout,
}

/// Why a recipient was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientRefusal {
    /// A local domain, no such account (550 5.1.1).
    UnknownUser,
    /// Not a local domain: relaying is refused (550 5.7.1).
    NotLocal,
    MailboxFull,
    /// Over the source's recipients per minute (450 4.7.1).
    RateLimited,
    /// The lookup failed on our side (451).
    TemporaryFailure,
}

impl RecipientRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientRefusal::UnknownUser => "unknown_user",
            RecipientRefusal::NotLocal => "not_local",
            RecipientRefusal::MailboxFull => "mailbox_full",
            RecipientRefusal::RateLimited => "rate_limited",
            RecipientRefusal::TemporaryFailure => "temporary_failure",
        }
    }
}

/// Who put a ban in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BanOrigin {
    /// The guard, after repeated authentication failures.
    Auto,
    /// An operator (`portcullis ban add`).
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Connection attempts far above their baseline.
    ConnectionSpike,
    /// Failed logins far above their baseline.
    AuthFailureSpike,
    /// Refused connections far above their baseline.
    RefusalSpike,
    /// Bans far above their baseline.
    BanSpike,
    /// A successful login right after many failures on the same account.
    LoginAfterFailures,
    /// A login from an address never seen for the account.
    NewLoginAddress,
    /// An account hit its sending limit (likely compromised).
    SendingLimit,
    /// A client proved an account's password through SCRAM-SHA-256-PLUS bound to another TLS
    /// connection: a man in the middle with a certificate the client accepted.
    ChannelBindingMismatch,
    /// An account's TOTP locked after too many wrong codes given with the right password:
    /// someone who is not its owner knows its password.
    TotpLocked,
    /// The ACME CA did not renew the certificate: warning while at least a sixth of its
    /// lifetime is left, critical after that or while there is none from the CA yet.
    CertificateRenewal,
    /// An account's outbound mail failed for good for many recipients within the window
    /// (`guard.bounce_alert_after`): likely a compromised account sending spam.
    OutboundBounces,
}

/// Everything observable. Field names are part of the operator interface (log lines are
/// parsed by people's tooling): add fields, do not rename them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    ServerStarted {
        version: &'static str,
    },
    Listening {
        listener: Listener,
        addr: SocketAddr,
    },
    /// The admin listener (HTTP: admin API, `/metrics`, dashboard) is bound. Logged as a
    /// `listening` line with `listener` = "admin", like the mail listeners.
    #[serde(rename = "listening")]
    AdminListening {
        /// Always "admin".
        listener: &'static str,
        addr: SocketAddr,
        tls: bool,
    },
    /// Where the admin API's bearer token is (never the token itself); `created` when it was
    /// generated at this start.
    AdminToken {
        path: String,
        created: bool,
    },
    ServerStopping {
        sessions: usize,
    },
    ServerStopped,
    ConfigReloaded {
        what: &'static str,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    ConnectionOpened {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
    },
    ConnectionRefused {
        listener: Listener,
        peer: SocketAddr,
        reason: RefuseReason,
    },
    /// A connection on a listener that expects a PROXY header closed before the guard saw its
    /// client; `peer` is the address that connected (a balancer, or whoever tried to pass for one).
    ProxyRefused {
        listener: Listener,
        peer: SocketAddr,
        reason: ProxyRefusal,
    },
    ConnectionClosed {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        duration_ms: u64,
        bytes_in: u64,
        bytes_out: u64,
        reason: CloseReason,
    },
    TlsEstablished {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        version: String,
        cipher: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
        /// How long the handshake took, in milliseconds (fractional).
        handshake_ms: f64,
    },
    TlsFailed {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        reason: String,
        /// How long until the handshake failed or timed out, in milliseconds (fractional).
        handshake_ms: f64,
    },
    AuthSucceeded {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        account: String,
        mechanism: &'static str,
        /// "password" or "app_password".
        credential: &'static str,
        /// The app password's name, when one was used.
        #[serde(skip_serializing_if = "Option::is_none")]
        app_password: Option<String>,
    },
    AuthFailed {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        /// The name the client tried (never the secret).
        username: String,
        mechanism: &'static str,
        /// Why (the client is told none of it): "wrong_password", "unknown_account",
        /// "second_factor_required", "channel_binding_mismatch", "app_password_revoked", ...
        reason: &'static str,
        /// The app password recognised, by name, when the refusal concerns one.
        #[serde(skip_serializing_if = "Option::is_none")]
        app_password: Option<String>,
    },
    /// A session was closed because the app password it logged in with was revoked or
    /// expired (or its account removed).
    AppPasswordSessionClosed {
        conn: u64,
        account: String,
        app_password: String,
    },
    /// A session was closed because the credentials it logged in with no longer open its
    /// account: the account was removed, or its password changed, or TOTP was turned on.
    AccountSessionClosed {
        conn: u64,
        account: String,
        reason: AccountChange,
    },
    /// A session of this node was closed because another node's admin API asked for it (a
    /// kill asked on this node's own API is its `admin_action` "session_kill").
    SessionKilled {
        conn: u64,
        /// The node whose admin API asked (its id, as `GET /api/v1/sessions` shows it).
        by_node: String,
    },
    /// The client broke a protocol rule or limit (line too long, too many commands, ...).
    ProtocolViolation {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        what: String,
    },
    MessageAccepted {
        conn: u64,
        peer: SocketAddr,
        account: String,
        size: u64,
        recipients: usize,
    },
    MessageRejected {
        conn: u64,
        peer: SocketAddr,
        account: String,
        size: u64,
        recipients: usize,
        reason: String,
    },
    /// Port 25, at connect: what the checks of the client found (forward-confirmed reverse DNS,
    /// the DNSBL zones) and what follows (`accept`, `junk`, `reject`).
    ClientChecked {
        conn: u64,
        peer: SocketAddr,
        /// RFC 8601 `iprev` result: pass, fail, temperror, permerror.
        iprev: &'static str,
        /// Its reverse DNS names, when forward-confirmed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        /// The DNSBL zones that list it.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        listed: Vec<String>,
        decision: &'static str,
    },
    /// Port 25, at MAIL FROM: whether mail to the sender's domain could be delivered at all
    /// (null MX, no MX/A/AAAA), and what follows.
    SenderChecked {
        conn: u64,
        peer: SocketAddr,
        /// MAIL FROM; empty for the null sender.
        mail_from: String,
        /// "routable", "null_mx", "unroutable", "null_sender", "address_literal", "temporary".
        result: &'static str,
        decision: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// A recipient was refused (RCPT TO), on any SMTP listener.
    RecipientRefused {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        recipient: String,
        reason: RecipientRefusal,
    },
    /// A source went over a per-minute rate of its listener (`[smtp]`): what was refused.
    RateLimited {
        conn: u64,
        listener: Listener,
        peer: SocketAddr,
        /// "messages_per_minute" or "recipients_per_minute".
        limit: &'static str,
        value: u32,
    },
    /// Port 25, at the end of DATA: who really sent the message (RFC 8601 words) and what was
    /// decided (`accept`, `junk`, `reject`, `tempfail`). One per message, stored or not.
    SenderVerdict {
        conn: u64,
        peer: SocketAddr,
        mail_from: String,
        /// The RFC5322.From domain DMARC evaluated (empty if none).
        from_domain: String,
        spf: &'static str,
        spf_helo: &'static str,
        /// pass if any signature passed, else the first other result, else none.
        dkim: &'static str,
        /// The d= of every signature that passed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dkim_domains: Vec<String>,
        dmarc: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        dmarc_policy: Option<&'static str>,
        arc: &'static str,
        iprev: &'static str,
        decision: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// The outbound queue tried to hand one queued message to one destination domain (issue
    /// 15): how many of its recipients there were delivered, deferred (to be retried) or
    /// failed for good, through which exchanger, with which TLS.
    DeliveryAttempt {
        queue_id: i64,
        domain: String,
        /// The exchanger of the last connection (empty if none was reached or tried).
        host: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<SocketAddr>,
        /// "TLSv1.3" or "TLSv1.2", if the last connection used TLS.
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_version: Option<String>,
        /// The suite as rustls names it, e.g. "TLS13_AES_256_GCM_SHA384".
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_cipher: Option<String>,
        /// What went wrong with TLS, in RFC 8460 result types ("starttls-not-supported",
        /// "certificate-host-mismatch", "tlsa-invalid", ...), also where the policy only reports.
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_failure: Option<String>,
        delivered: usize,
        deferred: usize,
        failed: usize,
        /// Why the first recipient not delivered was not (a remote reply, or what went wrong).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// This attempt was the message's last: it was given up (a failure notice follows).
        expired: bool,
        /// The recipients counted above, by result and the reason for it.
        outcomes: Vec<RecipientOutcomes>,
        /// The TLS policy the last connection was held to, and what came of TLS on it
        /// (absent when no exchanger was found).
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_policy: Option<OutboundTlsPolicy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_result: Option<OutboundTlsResult>,
    },
    /// A submission queued for remote recipients carries no DKIM signature of its From:
    /// domain (issue 18): the domain has no key yet, is not local, the message has no usable
    /// From:, or signing failed (`detail` says how). The message is sent all the same.
    MessageUnsigned {
        conn: u64,
        account: String,
        /// The RFC5322.From domain (empty if none was found).
        from_domain: String,
        reason: UnsignedReason,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A TLS report (RFC 8460) about the sessions to `domain` in the period that ended was
    /// queued for the domain's reporting addresses.
    TlsReportQueued {
        queue_id: i64,
        domain: String,
        recipients: usize,
        /// Sessions of the period, over every policy type.
        successful: u64,
        failed: u64,
    },
    /// Port 25: a message from another server is durably stored (it was answered 250).
    MessageReceived {
        conn: u64,
        peer: SocketAddr,
        helo: String,
        mail_from: String,
        size: u64,
        recipients: usize,
        /// "INBOX", or "Junk" when the verdict put it there.
        mailbox: &'static str,
        /// "TLSv1.3" and its cipher suite, when it came over TLS (absent: plaintext).
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_cipher: Option<String>,
        /// The sender asked for REQUIRETLS (RFC 8689).
        require_tls: bool,
    },
    BanAdded {
        network: String,
        /// Unix seconds; absent for a permanent ban.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
        origin: BanOrigin,
        reason: String,
    },
    BanRemoved {
        network: String,
        origin: BanOrigin,
    },
    BanExpired {
        network: String,
    },
    /// Something an operator should look at now. One per anomaly episode.
    AlertRaised {
        kind: AlertKind,
        severity: Severity,
        #[serde(skip_serializing_if = "Option::is_none")]
        listener: Option<Listener>,
        #[serde(skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<std::net::IpAddr>,
        /// The measured value (events per bucket, failures, messages).
        observed: f64,
        /// The learned baseline and threshold, for rate anomalies.
        #[serde(skip_serializing_if = "Option::is_none")]
        baseline: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        message: String,
    },
    /// A command was answered: from the last input before the answer until the answer was
    /// sent (pipelined commands answered together count once). Feeds the command latency histogram;
    /// too frequent for the log, so the log writer skips it (see [`Event::is_logged`]).
    CommandAnswered {
        conn: u64,
        listener: Listener,
        latency_us: u64,
    },
    /// A request to the admin API was refused: no or a wrong bearer token.
    AdminAuthFailed {
        peer: SocketAddr,
        path: String,
        /// An account sign-in: the account named (never the password or code).
        #[serde(skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// An account sign-in: why it was refused ("wrong_code", "replayed_code", ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// An operator changed something through the admin API (audit trail).
    AdminAction {
        peer: SocketAddr,
        /// e.g. "ban_add", "ban_remove", "session_kill", "alert_ack", "domain_add".
        action: &'static str,
        target: String,
    },
    /// One request answered on an HTTP listener other than the admin one (`https`): what was
    /// asked and the status given. The query (which carries an address) is never logged.
    HttpRequest {
        listener: Listener,
        peer: SocketAddr,
        /// The Host header as sent, at most 255 characters.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        method: String,
        /// The path, without the query, at most 200 characters.
        path: String,
        status: u16,
    },
    /// A certificate from the ACME CA was put in service: the stored one at start (`new`
    /// false) or one just obtained (`new` true). Times are Unix seconds.
    AcmeCertificate {
        names: Vec<String>,
        not_after: u64,
        renewal_due: u64,
        new: bool,
    },
    /// An attempt to get a certificate from the ACME CA failed; the one in service stays. An
    /// `alert_raised` (`certificate_renewal`) goes with it.
    AcmeFailed {
        error: String,
        /// Failed attempts in a row.
        failures: u32,
        retry_in_s: u64,
        /// How long the certificate in service has left; absent when there is none from the CA.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_in_s: Option<u64>,
        severity: Severity,
    },
    /// Something went wrong on our side (store, I/O) that an operator must see.
    InternalError {
        #[serde(skip_serializing_if = "Option::is_none")]
        conn: Option<u64>,
        what: String,
    },
}

impl Event {
    /// Whether the log writes this event. Everything is, except per-command latency samples,
    /// which only feed metrics (one line per command would drown the rest).
    pub fn is_logged(&self) -> bool {
        !matches!(self, Event::CommandAnswered { .. })
    }
}

/// Why a submitted message went out without a DKIM signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsignedReason {
    /// A local domain without a key (made before keys existed: `portcullis dkim rotate DOMAIN --grace 0`).
    NoKey,
    /// The From: domain is not one of this server's.
    NotLocal,
    /// No From: field, or no domain in it.
    NoFrom,
    /// A key was there, but signing failed (a key the library refused; see `detail`).
    SigningFailed,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client said goodbye (QUIT/LOGOUT).
    Quit,
    /// The peer closed the connection.
    PeerClosed,
    /// The client was silent for longer than the protocol's timeout.
    Timeout,
    /// The TLS handshake did not complete.
    TlsFailed,
    /// The session broke a limit and was closed by us.
    Limit,
    /// The guard withdrew the admission (a ban, or firewall rules reloaded).
    Revoked,
    /// The server is shutting down.
    Shutdown,
    /// A read or write failed.
    IoError,
}

/// What happened to an account that closed its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountChange {
    /// The account is gone (its id is never given to another).
    AccountRemoved,
    /// Its password changed or TOTP was turned on (a new credentials generation).
    CredentialsChanged,
}

/// An event with the time it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// A consumer of the event stream.
pub trait Sink: Send + Sync {
    fn accept(&self, record: &Record);

    /// Waits until everything accepted so far is out (before the process exits).
    fn flush(&self) {}
}

/// The stream: cheap to clone, fans every event out to its sinks.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Arc<Vec<Arc<dyn Sink>>>,
}

impl Events {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Events { sinks: Arc::new(sinks) }
    }

    /// A stream with no consumers (unit tests, admin CLI).
    pub fn none() -> Self {
        Events::default()
    }

    pub fn emit(&self, event: Event) {
        if self.sinks.is_empty() {
            return;
        }
        let ts_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let record = Record { ts_ms, event };
        for sink in self.sinks.iter() {
            sink.accept(&record);
        }
    }

    pub fn flush(&self) {
        for sink in self.sinks.iter() {
            sink.flush();
        }
    }
}

/// A sink that keeps every record in memory, for tests.
#[derive(Default)]
pub struct MemorySink {
    records: std::sync::Mutex<Vec<Record>>,
}

impl MemorySink {
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Sink for MemorySink {
    fn accept(&self, record: &Record) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_serialise_flat_with_an_event_tag() {
        let sink = Arc::new(MemorySink::default());
        let events = Events::new(vec![sink.clone()]);
        events.emit(Event::AuthFailed {
            conn: 7,
            listener: Listener::Submissions,
            peer: "127.0.0.2:4000".parse().unwrap(),
            username: "alice@example.org".into(),
            mechanism: "PLAIN",
            reason: "wrong_password",
            app_password: None,
        });
        let records = sink.records();
        assert_eq!(records.len(), 1);
        let json: serde_json::Value = serde_json::to_value(&records[0]).unwrap();
        assert_eq!(json["event"], "auth_failed");
        assert_eq!(json["listener"], "submissions");
        assert_eq!(json["peer"], "127.0.0.2:4000");
        assert_eq!(json["username"], "alice@example.org");
        assert!(json["ts_ms"].as_u64().unwrap() > 0);
    }
}
