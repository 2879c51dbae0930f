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

use std::net::IpAddr;

use portcullis_lines::{Line, LineBuffer};
use portcullis_sasl::{self as sasl, Mechanism};
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use smtp_proto::{Error as ParseError, Request};

pub use message::{Envelope, Received};
pub use refusal::refused_connection;
use reply::Reply;

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

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Send [`Session::take_output`], then read and call [`Session::feed`] (or
    /// [`Session::peer_closed`]).
    Read,
    /// Send the output, run the server side of a TLS handshake, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Look up this user's SCRAM keys (or a decoy), then call [`Session::scram_keys`].
    ScramLookup { username: String },
    /// Check these credentials (or record this SCRAM outcome), then call
    /// [`Session::auth_result`].
    Authenticate { mechanism: Mechanism, attempt: sasl::Attempt },
    /// Look up a recipient, then call [`Session::recipient_result`].
    LookupRecipient { address: String },
    /// Store the message durably, then call [`Session::delivery_result`].
    Deliver(Envelope),
    /// Something a guard or an operator should know about; continue with the next action.
    Report(Fact),
    /// Send the output and close the connection.
    Close,
}

/// Facts the session observes; the driver turns them into events and the guard decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    LineTooLong,
    TooManyCommands,
    TooManyErrors,
    TooManyAuthFailures,
    /// A command other than EHLO/HELO/STARTTLS/NOOP/RSET/QUIT before TLS on 587.
    CommandBeforeStartTls(&'static str),
    MessageTooBig,
    /// Someone spoke HTTP to the mail port (cross-protocol attack or scanner).
    HttpRequest,
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

enum State {
    /// Reading command lines.
    Command,
    /// Mid-SASL exchange, waiting for the client's next response line.
    AuthExchange(sasl::Exchange),
    /// Reading a DATA body.
    Data(DataReceiver),
    /// Reading a DATA body that is already too big: keep only the end-of-data detection.
    DataDiscard(DummyDataReceiver),
    /// Reading a BDAT chunk; `refused` chunks are read and thrown away (no transaction).
    Bdat {
        remaining: u64,
        last: bool,
        refused: bool,
    },
    /// An action is out; the matching result call moves on.
    Waiting(Pending),
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Tls,
    ScramKeys,
    Auth,
    Recipient,
    Delivery,
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<(String, AccountId)>,
    /// The recipient being looked up.
    pending_recipient: Option<String>,
    body: Vec<u8>,
    /// The body outgrew the limit: the rest is read and discarded.
    too_big: bool,
    /// BDAT was used (DATA is then refused).
    chunking: bool,
    /// RCPT commands in this transaction, whatever their outcome.
    rcpt_commands: usize,
    /// Bytes of message data read in this transaction (DATA's body, BDAT chunks), kept or
    /// skipped: far past `max_message_size` the rest is not read (see `overflowing`).
    received: u64,
}

/// What a message may go over `max_message_size` by, at least, and still be read to its end.
const OVERFLOW_MIN: u64 = 1 << 20;

pub struct Session {
    config: Config,
    peer: Peer,
    clock: fn() -> i64,
    input: LineBuffer,
    output: Vec<u8>,
    state: State,
    tls: bool,
    helo: Option<String>,
    principal: Option<Principal>,
    tx: Transaction,
    commands: u64,
    errors: u32,
    auth_failures: u32,
    messages: u64,
    reports: Vec<Fact>,
    /// A SCRAM exchange waiting for the account's keys.
    sasl: Option<sasl::Exchange>,
    /// An action that follows from a reported outcome.
    queued: Option<Action>,
}

fn system_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Session {
    /// A new connection; the greeting is already in the output.
    pub fn new(config: Config, peer: Peer) -> Session {
        Session::with_clock(config, peer, system_clock)
    }

    /// As [`Session::new`], reading the time (for Date and Received headers) from `clock`.
    pub fn with_clock(config: Config, peer: Peer, clock: fn() -> i64) -> Session {
        let tls = config.implicit_tls;
        let mut session = Session {
            input: LineBuffer::new(config.max_line_length),
            config,
            peer,
            clock,
            output: Vec::with_capacity(512),
            state: State::Command,
            tls,
            helo: None,
            principal: None,
            tx: Transaction::default(),
            commands: 0,
            errors: 0,
            auth_failures: 0,
            messages: 0,
            reports: Vec::new(),
            sasl: None,
            queued: None,
        };
        let greeting = format!("{} ESMTP Portcullis", session.config.hostname);
        session.reply(Reply::new(220, "", &greeting));
        session
    }

    /// Bytes to send, in order.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.input.push(data);
    }

    /// Whether the client is in the middle of a command line (or a SASL response line). A
    /// driver bounds the time such a line may take, so that a client sending a byte at a time
    /// cannot hold a session open. Message data (DATA, BDAT) is not a command line (see
    /// [`Session::uploading`]), except a BDAT chunk refused before it is read (no transaction,
    /// typically no login): it is only skipped, and bounded as a command.
    pub fn mid_command(&self) -> bool {
        match self.state {
            State::Command | State::AuthExchange(_) => self.input.mid_line(),
            State::Bdat { refused, .. } => refused,
            _ => false,
        }
    }

    /// Whether the client is sending a message: DATA's body (kept, or skipped once too big),
    /// or a BDAT transaction's chunks and the BDAT lines between them. A driver bounds the
    /// time an upload may take by a minimum average rate, so that a logged-in client sending
    /// a byte at a time cannot hold a session open either.
    pub fn uploading(&self) -> bool {
        match self.state {
            State::Data(_) | State::DataDiscard(_) => true,
            State::Bdat { refused, .. } => !refused,
            State::Command => self.tx.chunking,
            _ => false,
        }
    }

    /// The peer closed its side.
    pub fn peer_closed(&mut self) {
        self.state = State::Closing;
    }

    /// The client was silent too long.
    pub fn timed_out(&mut self) {
        let text = format!("{} Error: timeout exceeded", self.config.hostname);
        self.reply(Reply::new(421, "4.4.2", &text));
        self.state = State::Closing;
    }

    /// The server is going away.
    pub fn shutting_down(&mut self) {
        let text = format!("{} Service shutting down, try again later", self.config.hostname);
        self.reply(Reply::new(421, "4.3.2", &text));
        self.state = State::Closing;
    }

    /// The TLS handshake asked for by [`Action::StartTls`] succeeded. Everything is reset
    /// (RFC 3207 §4.2): the client must EHLO again.
    pub fn tls_established(&mut self, description: String, channel_binding: Option<Vec<u8>>) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Tls)));
        self.tls = true;
        self.peer.tls = Some(description);
        self.peer.channel_binding = channel_binding;
        self.helo = None;
        self.tx = Transaction::default();
        self.input.clear();
        self.state = State::Command;
    }

    /// The SCRAM keys asked for by [`Action::ScramLookup`].
    pub fn scram_keys(&mut self, keys: sasl::ScramKeys) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::ScramKeys)));
        self.state = State::Command;
        if let Some(mut exchange) = self.sasl.take() {
            let step = exchange.keys(keys);
            if let Some(action) = self.sasl_step(exchange, step) {
                self.queued = Some(action);
            }
        }
    }

    pub fn auth_result(&mut self, outcome: AuthOutcome, principal: Option<Principal>) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Auth)));
        self.state = State::Command;
        match (outcome, principal) {
            (AuthOutcome::Success, Some(principal)) => {
                self.principal = Some(principal);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
            }
            (AuthOutcome::TemporaryFailure, _) => {
                self.reply(Reply::new(454, "4.7.0", "Temporary authentication failure, try again later"));
            }
            _ => self.auth_failed(),
        }
    }

    fn auth_failed(&mut self) {
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures {
            self.reports.push(Fact::TooManyAuthFailures);
            self.reply(Reply::new(421, "4.7.0", "Too many failed authentication attempts, closing connection"));
            self.state = State::Closing;
        } else {
            self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid (accounts with two-factor authentication use an app password)",
            ));
        }
    }

    pub fn recipient_result(&mut self, outcome: RecipientOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Recipient)));
        self.state = State::Command;
        let Some(address) = self.tx.pending_recipient.take() else { return };
        let reply = match outcome {
            RecipientOutcome::Local(account) => {
                if !self.tx.recipients.iter().any(|(a, _)| *a == address) {
                    self.tx.recipients.push((address, account));
                }
                Reply::new(250, "2.1.5", "Recipient ok")
            }
            RecipientOutcome::UnknownUser => {
                self.errors += 1;
                Reply::owned(550, "5.1.1", format!("<{address}>: Recipient address rejected: no such user here"))
            }
            RecipientOutcome::NotLocal => {
                self.errors += 1;
                Reply::owned(
                    550,
                    "5.7.1",
                    format!("<{address}>: Relaying is not enabled on this server; only local recipients are accepted"),
                )
            }
            RecipientOutcome::MailboxFull => Reply::owned(552, "5.2.2", format!("<{address}>: Mailbox full")),
            RecipientOutcome::TemporaryFailure => Reply::new(451, "4.3.0", "Temporary failure, try again later"),
        };
        self.reply(reply);
    }

    pub fn delivery_result(&mut self, outcome: DeliveryOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Delivery)));
        self.state = State::Command;
        let reply = match outcome {
            DeliveryOutcome::Stored => {
                Reply::owned(250, "2.0.0", format!("Message stored as {}.{}", self.peer.session_id, self.messages))
            }
            DeliveryOutcome::MailboxFull(address) => {
                Reply::owned(552, "5.2.2", format!("<{address}>: Mailbox full, message not stored"))
            }
            DeliveryOutcome::SendingLimit => {
                Reply::new(451, "4.7.1", "Sending limit reached for this account; try again later")
            }
            DeliveryOutcome::TemporaryFailure => {
                Reply::new(451, "4.3.0", "Temporary storage failure, message not stored; try again later")
            }
        };
        self.tx = Transaction::default();
        self.reply(reply);
    }

    /// The next thing to do. Call in a loop; after an outward action, report its result
    /// before calling again.
    pub fn next_action(&mut self) -> Action {
        loop {
            if !self.reports.is_empty() {
                return Action::Report(self.reports.remove(0));
            }
            if let Some(action) = self.queued.take() {
                return action;
            }
            match &mut self.state {
                State::Closing => return Action::Close,
                State::Waiting(Pending::Tls) => return Action::StartTls,
                State::Waiting(_) => {
                    debug_assert!(false, "next_action while an action is out");
                    return Action::Read;
                }
                State::Data(_) | State::DataDiscard(_) => {
                    if let Some(action) = self.read_data() {
                        return action;
                    }
                }
                State::Bdat { .. } => {
                    if let Some(action) = self.read_chunk() {
                        return action;
                    }
                }
                State::AuthExchange(_) | State::Command => match self.input.next_line() {
                    None => return Action::Read,
                    Some(Line::TooLong) => {
                        self.reports.push(Fact::LineTooLong);
                        self.state = State::Command;
                        self.error(Reply::new(500, "5.5.2", "Line too long"));
                    }
                    Some(Line::Complete(line)) => {
                        if let Some(action) = self.line(line) {
                            return action;
                        }
                    }
                },
            }
        }
    }

    fn reply(&mut self, reply: Reply<'_>) {
        reply.write(&mut self.output);
    }

    /// A refused command: answered, counted, and the connection closed when there are too many.
    fn error(&mut self, reply: Reply<'_>) {
        self.reply(reply);
        self.errors += 1;
        if self.errors > self.config.max_errors && !matches!(self.state, State::Closing) {
            self.reports.push(Fact::TooManyErrors);
            self.reply(Reply::new(421, "4.7.0", "Too many errors, closing connection"));
            self.state = State::Closing;
        }
    }

    /// Counts a command against `max_commands`; false (and the connection closing) past it.
    /// MAIL, RCPT, DATA and BDAT are not counted: they are bounded per message, and a client
    /// that keeps its connection to send many messages is doing useful work (RCPTs beyond
    /// `max_recipients` in one transaction are counted, see `rcpt`).
    fn count_command(&mut self) -> bool {
        self.commands += 1;
        if self.commands > self.config.max_commands {
            self.reports.push(Fact::TooManyCommands);
            self.reply(Reply::new(421, "4.7.0", "Too many commands, closing connection"));
            self.state = State::Closing;
            return false;
        }
        true
    }

    fn line(&mut self, line: Vec<u8>) -> Option<Action> {
        if matches!(self.state, State::AuthExchange(_)) {
            if !self.count_command() {
                return None;
            }
            let State::AuthExchange(mut exchange) = std::mem::replace(&mut self.state, State::Command) else {
                unreachable!()
            };
            let step = exchange.step(&line);
            return self.sasl_step(exchange, step);
        }
        self.command(line)
    }

    fn command(&mut self, mut line: Vec<u8>) -> Option<Action> {
        if looks_like_http(&line) {
            self.reports.push(Fact::HttpRequest);
            self.state = State::Closing;
            return None;
        }
        line.extend_from_slice(b"\r\n");
        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
        let in_transaction =
            matches!(parsed, Ok(Request::Mail { .. } | Request::Rcpt { .. } | Request::Data | Request::Bdat { .. }));
        if !in_transaction && !self.count_command() {
            return None;
        }
        let request = match parsed {
            Ok(request) => request,
            Err(e) => {
                let refused = if self.tls { None } else { Some("(unparsable)") };
                if let Some(what) = refused {
                    self.reports.push(Fact::CommandBeforeStartTls(what));
                    self.error(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
                } else {
                    self.error(parse_error_reply(&e));
                }
                return None;
            }
        };

        if !self.tls
            && !matches!(
                request,
                Request::Ehlo { .. }
                    | Request::Helo { .. }
                    | Request::StartTls
                    | Request::Noop { .. }
                    | Request::Rset
                    | Request::Quit
            )
        {
            self.reports.push(Fact::CommandBeforeStartTls(request.name()));
            self.error(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
            return None;
        }

        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::StartTls => return self.starttls(),
            Request::Auth { mechanism, initial_response } => return self.auth(mechanism, initial_response),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => return self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => self.bdat(chunk_size as u64, is_last),
            Request::Noop { .. } => self.reply(Reply::new(250, "2.0.0", "OK")),
            Request::Rset => {
                self.tx = Transaction::default();
                self.reply(Reply::new(250, "2.0.0", "OK"));
            }
            Request::Quit => {
                self.reply(Reply::new(221, "2.0.0", "Bye"));
                self.state = State::Closing;
            }
            // Never confirm or deny that an address exists (RFC 5321 §3.5.3).
            Request::Vrfy { .. } => {
                self.reply(Reply::new(252, "2.5.2", "Cannot VRFY user; send mail and it will be delivered if it can"))
            }
            Request::Help { .. } => {
                self.reply(Reply::new(214, "2.0.0", "See RFC 6409 and https://www.rfc-editor.org/rfc/rfc5321"))
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => self.error(Reply::new(502, "5.5.1", "Command not implemented")),
        }
        None
    }

    fn ehlo(&mut self, host: String, extended: bool) {
        self.helo = Some(host);
        self.tx = Transaction::default();
        let hostname = self.config.hostname.clone();
        if !extended {
            self.reply(Reply::new(250, "", &hostname));
            return;
        }
        let mut lines: Vec<String> = vec![hostname];
        if self.tls {
            lines.push("PIPELINING".into());
            lines.push(format!("SIZE {}", self.config.max_message_size));
            lines.push("8BITMIME".into());
            lines.push("SMTPUTF8".into());
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("CHUNKING".into());
            if self.principal.is_none() {
                lines.push("AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS".into());
            }
        } else {
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("STARTTLS".into());
        }
        reply::write_multiline(&mut self.output, 250, &lines);
    }

    fn starttls(&mut self) -> Option<Action> {
        if self.tls {
            self.error(Reply::new(503, "5.5.1", "TLS is already active"));
            return None;
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        // Anything pipelined after STARTTLS arrived in plaintext: never execute it.
        self.input.clear();
        self.state = State::Waiting(Pending::Tls);
        Some(Action::StartTls)
    }

    fn auth(&mut self, mechanism: u64, initial_response: String) -> Option<Action> {
        if self.helo.is_none() {
            self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
            return None;
        }
        if self.principal.is_some() {
            self.error(Reply::new(503, "5.5.1", "Already authenticated"));
            return None;
        }
        if self.tx.from.is_some() {
            self.error(Reply::new(503, "5.5.1", "AUTH is not allowed during a mail transaction"));
            return None;
        }
        let mechanism = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            smtp_proto::AUTH_SCRAM_SHA_256 => Mechanism::ScramSha256,
            smtp_proto::AUTH_SCRAM_SHA_256_PLUS => Mechanism::ScramSha256Plus,
            _ => {
                self.error(Reply::new(504, "5.5.4", "Unrecognized authentication mechanism"));
                return None;
            }
        };
        let initial = (!initial_response.is_empty()).then_some(initial_response.as_bytes());
        let (exchange, step) = sasl::Exchange::start(mechanism, initial, self.peer.channel_binding.as_deref());
        self.sasl_step(exchange, step)
    }

    fn sasl_step(&mut self, exchange: sasl::Exchange, step: sasl::Step) -> Option<Action> {
        let mechanism = exchange.mechanism();
        match step {
            sasl::Step::Challenge(challenge) => {
                self.reply(Reply::owned(334, "", sasl::encode(&challenge)));
                self.state = State::AuthExchange(exchange);
                None
            }
            sasl::Step::Lookup { username } => {
                self.sasl = Some(exchange);
                self.state = State::Waiting(Pending::ScramKeys);
                Some(Action::ScramLookup { username })
            }
            sasl::Step::Attempt(attempt) => {
                self.state = State::Waiting(Pending::Auth);
                Some(Action::Authenticate { mechanism, attempt })
            }
            sasl::Step::Failed(sasl::SaslError::Cancelled) => {
                self.state = State::Command;
                self.reply(Reply::new(501, "5.0.0", "Authentication cancelled"));
                None
            }
            sasl::Step::Failed(_) => {
                self.state = State::Command;
                self.auth_failed();
                None
            }
        }
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        let Some(principal) = &self.principal else {
            return self.error(Reply::new(530, "5.7.0", "Authentication required"));
        };
        if self.tx.from.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Sender already specified"));
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            return self.error(Reply::new(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter"));
        }
        if from.size as u64 > self.config.max_message_size {
            return self.error(Reply::owned(
                552,
                "5.3.4",
                format!("Message size exceeds the maximum of {} bytes", self.config.max_message_size),
            ));
        }
        if !same_address(&from.address, &principal.address) {
            let text =
                format!("<{}>: Sender address is not yours (authenticated as {})", from.address, principal.address);
            return self.error(Reply::owned(553, "5.7.1", text));
        }
        self.tx.from = Some(from.address);
        self.reply(Reply::new(250, "2.1.0", "Sender ok"));
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Option<Action> {
        if self.tx.from.is_none() {
            self.error(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return None;
        }
        // RCPT is free of `max_commands` only as far as a message can use it: past
        // `max_recipients` RCPTs in one transaction (repeats, refused ones) each one counts.
        self.tx.rcpt_commands += 1;
        if self.tx.rcpt_commands > self.config.max_recipients && !self.count_command() {
            return None;
        }
        if self.tx.recipients.len() >= self.config.max_recipients {
            self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
            return None;
        }
        // smtp-proto hands `<postmaster>` over as the empty address (RFC 5321 §4.5.1).
        let address = if to.address.is_empty() { format!("postmaster@{}", self.config.hostname) } else { to.address };
        self.tx.pending_recipient = Some(address.clone());
        self.state = State::Waiting(Pending::Recipient);
        Some(Action::LookupRecipient { address })
    }

    fn transaction_ready(&mut self) -> Result<(), Reply<'static>> {
        if self.tx.from.is_none() {
            return Err(Reply::new(503, "5.5.1", "Need MAIL command first"));
        }
        if self.tx.recipients.is_empty() {
            return Err(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        Ok(())
    }

    fn data(&mut self) {
        if self.tx.chunking {
            return self.error(Reply::new(503, "5.5.1", "DATA cannot follow BDAT"));
        }
        if let Err(reply) = self.transaction_ready() {
            return self.error(reply);
        }
        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        let mut receiver = DataReceiver::new();
        // The receiver recognises "." and ".." only after a CRLF; the body starts right after
        // one (the DATA line's), so prime it with that.
        receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        self.state = State::Data(receiver);
    }

    fn read_data(&mut self) -> Option<Action> {
        let buffered = self.input.buffered();
        if buffered.is_empty() {
            return Some(Action::Read);
        }
        let mut bytes = buffered.iter();
        let finished = match &mut self.state {
            State::Data(receiver) => {
                let finished = receiver.ingest(&mut bytes, &mut self.tx.body);
                if !finished && self.tx.body.len() as u64 > self.config.max_message_size {
                    // From here on only look for the end, keep nothing.
                    let discard = DummyDataReceiver::new_data(receiver);
                    self.tx.too_big = true;
                    self.tx.body = Vec::new();
                    self.state = State::DataDiscard(discard);
                }
                finished
            }
            State::DataDiscard(receiver) => receiver.ingest(&mut bytes),
            _ => unreachable!("read_data outside DATA"),
        };
        let consumed = buffered.len() - bytes.as_slice().len();
        self.input.consume(consumed);
        self.tx.received += consumed as u64;
        if !finished && self.overflowing() {
            return None;
        }
        if !finished {
            return Some(Action::Read);
        }
        if self.tx.too_big || self.tx.body.len() as u64 > self.config.max_message_size {
            return self.message_too_big();
        }
        Some(self.finish_message())
    }

    fn message_too_big(&mut self) -> Option<Action> {
        self.tx = Transaction::default();
        self.state = State::Command;
        self.reports.push(Fact::MessageTooBig);
        let text = format!("Message exceeds the maximum size of {} bytes", self.config.max_message_size);
        self.reply(Reply::owned(552, "5.3.4", text));
        None
    }

    /// A message that goes on far past the size limit (a never-ending DATA, a huge BDAT chunk,
    /// BDAT chunks without end) is not read to its end: answered as too big, and the
    /// connection closed, since the rest of the data cannot be told from commands. Up to twice
    /// the limit, and at least 1 MiB over it, is read and skipped, so that a client that did
    /// not know the limit (no SIZE) is told at the end, as usual.
    fn overflowing(&mut self) -> bool {
        let max = self.config.max_message_size;
        if self.tx.received <= max.saturating_add(max.max(OVERFLOW_MIN)) {
            return false;
        }
        self.message_too_big();
        self.reply(Reply::new(421, "4.7.0", "Too much data, closing connection"));
        self.state = State::Closing;
        true
    }

    fn bdat(&mut self, size: u64, last: bool) {
        // The chunk follows whatever we answer: it is always read (RFC 3030 §2).
        let refused = self.transaction_ready().is_err();
        self.tx.chunking |= !refused;
        self.state = State::Bdat { remaining: size, last, refused };
    }

    fn read_chunk(&mut self) -> Option<Action> {
        let State::Bdat { remaining, last, refused } = &mut self.state else { unreachable!("read_chunk outside BDAT") };
        let available = self.input.buffered();
        let take = (*remaining).min(available.len() as u64) as usize;
        let keep = !*refused && !self.tx.too_big;
        if keep && self.tx.body.len() as u64 + take as u64 > self.config.max_message_size {
            self.tx.too_big = true;
            self.tx.body = Vec::new();
        } else if keep {
            self.tx.body.extend_from_slice(&available[..take]);
        }
        self.input.consume(take);
        *remaining -= take as u64;
        let more = *remaining > 0;
        let (last, refused) = (*last, *refused);
        self.tx.received += take as u64;
        if more && self.overflowing() {
            return None;
        }
        if more {
            return Some(Action::Read);
        }
        self.state = State::Command;
        if refused {
            if let Err(reply) = self.transaction_ready() {
                self.error(reply);
            }
            return None;
        }
        if self.tx.too_big {
            return self.message_too_big();
        }
        if last {
            return Some(self.finish_message());
        }
        let text = format!("{} octets received", self.tx.body.len());
        self.reply(Reply::owned(250, "2.0.0", text));
        None
    }

    fn finish_message(&mut self) -> Action {
        self.messages += 1;
        let body = std::mem::take(&mut self.tx.body);
        let recipients = std::mem::take(&mut self.tx.recipients);
        let received = Received {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            peer_ip: self.peer.ip,
            hostname: &self.config.hostname,
            id: &format!("{}.{}", self.peer.session_id, self.messages),
            tls: self.peer.tls.as_deref(),
            single_recipient: (recipients.len() == 1).then(|| recipients[0].0.as_str()),
            now: (self.clock)(),
        };
        let data = message::prepare(&body, &received);
        self.state = State::Waiting(Pending::Delivery);
        Action::Deliver(Envelope { from: self.tx.from.clone().unwrap_or_default(), recipients, data })
    }
}

/// Whether a MAIL FROM address is the account's: the domain compares case-insensitively, and
/// local parts do too, since accounts have one lower-case spelling.
fn same_address(given: &str, account: &str) -> bool {
    given.to_lowercase() == account
}

fn looks_like_http(line: &[u8]) -> bool {
    ["GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS "]
        .iter()
        .any(|m| line.len() >= m.len() && line[..m.len()].eq_ignore_ascii_case(m.as_bytes()))
}

fn parse_error_reply(error: &ParseError) -> Reply<'static> {
    match error {
        ParseError::UnknownCommand => Reply::new(500, "5.5.2", "Command unrecognized"),
        ParseError::SyntaxError { syntax } => Reply::owned(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidSenderAddress => Reply::new(553, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => Reply::new(553, "5.1.3", "Bad recipient address syntax"),
        ParseError::InvalidParameter { param } => {
            Reply::owned(501, "5.5.4", format!("Invalid value for parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => {
            let param: String = param.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
            Reply::owned(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        _ => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

#[cfg(test)]
mod tests;
