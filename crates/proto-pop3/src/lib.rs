//! POP3 (RFC 1939, with CAPA and response codes from RFC 2449 and SASL from RFC 5034) as a
//! sans-IO state machine. Bytes in, bytes out; the store is reached through [`Action`]s whose
//! outcomes the driver reports back.
//!
//! No parser crate for POP3 server commands exists that is worth its weight: the grammar is
//! a keyword and at most two arguments per line, written here.
#![forbid(unsafe_code)]

mod refusal;
pub use refusal::refused_connection;

use portcullis_lines::{Line, LineBuffer};
use portcullis_sasl::{self as sasl, Mechanism};
use zeroize::Zeroizing;

pub type AccountId = i64;

#[derive(Debug, Clone)]
pub struct Config {
    pub hostname: String,
    pub max_line_length: usize,
    pub max_commands: u64,
    pub max_auth_failures: u32,
    /// Invalid or refused commands tolerated before the connection is closed.
    pub max_errors: u32,
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// USER and PASS (RFC 1939 §7).
    UserPass,
    Sasl(Mechanism),
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::UserPass => "USER",
            Method::Sasl(m) => m.name(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success(AccountId),
    InvalidCredentials,
    TemporaryFailure,
}

/// One message of the maildrop as the session was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildrop {
    /// With the UID it makes the UIDL string, stable across sessions (RFC 1939 §7).
    pub uidvalidity: u32,
    pub messages: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Another session holds the maildrop (RFC 2449 IN-USE).
    InUse,
    TemporaryFailure,
}

#[derive(Debug)]
pub enum Action {
    /// Send [`Session::take_output`], then read and [`Session::feed`] (or
    /// [`Session::peer_closed`]).
    Read,
    /// Look up this user's SCRAM keys (or a decoy), then call [`Session::scram_keys`].
    ScramLookup {
        username: String,
    },
    /// Check these credentials (or record this SCRAM outcome), then call
    /// [`Session::auth_result`].
    Authenticate {
        method: Method,
        attempt: sasl::Attempt,
    },
    /// Lock and list the account's INBOX, then call [`Session::maildrop_opened`].
    OpenMaildrop {
        account: AccountId,
    },
    /// Read a message's raw bytes, then call [`Session::message_fetched`].
    Fetch {
        uid: u32,
    },
    /// Remove these messages atomically (the UPDATE state), then call
    /// [`Session::update_result`].
    Update {
        delete: Vec<u32>,
    },
    Report(Fact),
    /// Send the output and close.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    LineTooLong,
    TooManyCommands,
    TooManyErrors,
    TooManyAuthFailures,
}

enum State {
    Authorization { user: Option<String> },
    AuthExchange(sasl::Exchange),
    Transaction,
    Waiting(Pending),
    Closing,
}

enum Pending {
    ScramKeys,
    Auth,
    Open,
    /// RETR, or TOP with this many body lines.
    Fetch {
        top: Option<usize>,
    },
    Update,
}

pub struct Session {
    config: Config,
    input: LineBuffer,
    output: Vec<u8>,
    state: State,
    maildrop: Option<Maildrop>,
    deleted: Vec<bool>,
    commands: u64,
    errors: u32,
    auth_failures: u32,
    reports: Vec<Fact>,
    /// An action that follows from a reported outcome (open the maildrop after a login).
    queued: Option<Action>,
    /// A SCRAM exchange waiting for the account's keys.
    sasl: Option<sasl::Exchange>,
    /// The TLS connection's `tls-exporter` value, for SCRAM-SHA-256-PLUS.
    channel_binding: Option<Vec<u8>>,
}

impl Session {
    /// A new connection (always under TLS: POP3 is only offered on 995); the greeting is in
    /// the output.
    pub fn new(config: Config, channel_binding: Option<Vec<u8>>) -> Session {
        let mut s = Session {
            input: LineBuffer::new(config.max_line_length),
            config,
            output: Vec::new(),
            state: State::Authorization { user: None },
            maildrop: None,
            deleted: Vec::new(),
            commands: 0,
            errors: 0,
            auth_failures: 0,
            reports: Vec::new(),
            queued: None,
            sasl: None,
            channel_binding,
        };
        let greeting = format!("{} POP3 server ready", s.config.hostname);
        s.ok(&greeting);
        s
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.input.push(data);
    }

    /// Whether the client is in the middle of a command line (or a SASL response line): a
    /// driver bounds the time such a line may take, so that a client sending a byte at a time
    /// cannot hold a session open.
    pub fn mid_command(&self) -> bool {
        self.input.mid_line()
    }

    pub fn peer_closed(&mut self) {
        self.state = State::Closing;
    }

    /// The autologout timer fired: close without a word and without deleting anything
    /// (RFC 1939 §3).
    pub fn timed_out(&mut self) {
        self.state = State::Closing;
    }

    pub fn shutting_down(&mut self) {
        self.err("[SYS/TEMP] Server shutting down, nothing was deleted");
        self.state = State::Closing;
    }

    /// The SCRAM keys asked for by [`Action::ScramLookup`].
    pub fn scram_keys(&mut self, keys: sasl::ScramKeys) {
        self.state = State::Authorization { user: None };
        if let Some(mut exchange) = self.sasl.take() {
            let step = exchange.keys(keys);
            self.queued = self.sasl_step(exchange, step);
        }
    }

    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        match outcome {
            AuthOutcome::Success(account) => {
                self.state = State::Waiting(Pending::Open);
                self.queued = Some(Action::OpenMaildrop { account });
            }
            AuthOutcome::TemporaryFailure => {
                self.state = State::Authorization { user: None };
                self.err("[SYS/TEMP] Temporary authentication failure, try again later");
            }
            AuthOutcome::InvalidCredentials => self.auth_failed(),
        }
    }

    fn auth_failed(&mut self) {
        self.state = State::Authorization { user: None };
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures {
            self.reports.push(Fact::TooManyAuthFailures);
            self.err("[AUTH] Too many authentication failures, closing connection");
            self.state = State::Closing;
        } else {
            self.err("[AUTH] Authentication failed (accounts with two-factor authentication use an app password)");
        }
    }

    pub fn maildrop_opened(&mut self, result: Result<Maildrop, OpenError>) {
        match result {
            Ok(maildrop) => {
                let (count, octets) = totals(&maildrop.messages, None);
                self.deleted = vec![false; maildrop.messages.len()];
                self.maildrop = Some(maildrop);
                self.state = State::Transaction;
                self.ok(&format!("Logged in, {count} messages ({octets} octets)"));
            }
            Err(OpenError::InUse) => {
                self.state = State::Authorization { user: None };
                self.err("[IN-USE] The maildrop is open in another session");
            }
            Err(OpenError::TemporaryFailure) => {
                self.state = State::Authorization { user: None };
                self.err("[SYS/TEMP] Cannot open the maildrop, try again later");
            }
        }
    }

    /// `None`: the message vanished meanwhile (expunged by another client).
    pub fn message_fetched(&mut self, raw: Option<Vec<u8>>) {
        let top = match std::mem::replace(&mut self.state, State::Transaction) {
            State::Waiting(Pending::Fetch { top }) => top,
            _ => {
                debug_assert!(false, "message_fetched without a fetch");
                return;
            }
        };
        let Some(raw) = raw else {
            self.err("No such message (it was removed by another client)");
            return;
        };
        let content = match top {
            None => &raw[..],
            Some(lines) => top_of(&raw, lines),
        };
        match top {
            None => self.ok(&format!("{} octets", raw.len())),
            Some(_) => self.ok("Top of message follows"),
        }
        write_dot_stuffed(&mut self.output, content);
    }

    pub fn update_result(&mut self, ok: bool) {
        let deleted = self.deleted.iter().filter(|&&d| d).count();
        if ok {
            self.ok(&format!("Bye, {deleted} messages deleted"));
        } else {
            self.err("[SYS/TEMP] Could not delete the messages; they are still there");
        }
        self.state = State::Closing;
    }

    pub fn next_action(&mut self) -> Action {
        loop {
            if !self.reports.is_empty() {
                return Action::Report(self.reports.remove(0));
            }
            if let Some(action) = self.queued.take() {
                return action;
            }
            match &self.state {
                State::Closing => return Action::Close,
                State::Waiting(_) => {
                    debug_assert!(false, "next_action while an action is out");
                    return Action::Read;
                }
                _ => {}
            }
            match self.input.next_line() {
                None => return Action::Read,
                Some(Line::TooLong) => {
                    self.reports.push(Fact::LineTooLong);
                    if matches!(self.state, State::AuthExchange(_)) {
                        self.state = State::Authorization { user: None };
                    }
                    self.error("Line too long");
                }
                Some(Line::Complete(line)) => {
                    self.commands += 1;
                    if self.commands > self.config.max_commands {
                        self.reports.push(Fact::TooManyCommands);
                        self.err("Too many commands, closing connection");
                        self.state = State::Closing;
                        continue;
                    }
                    if let Some(action) = self.line(line) {
                        return action;
                    }
                }
            }
        }
    }

    fn ok(&mut self, text: &str) {
        self.output.extend_from_slice(b"+OK");
        if !text.is_empty() {
            self.output.push(b' ');
            self.output.extend_from_slice(text.as_bytes());
        }
        self.output.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, text: &str) {
        self.output.extend_from_slice(b"-ERR ");
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// A refused command: answered, counted, and the connection closed after too many.
    fn error(&mut self, text: &str) {
        self.err(text);
        self.errors += 1;
        if self.errors > self.config.max_errors && !matches!(self.state, State::Closing) {
            self.reports.push(Fact::TooManyErrors);
            self.err("Too many errors, closing connection");
            self.state = State::Closing;
        }
    }

    fn line(&mut self, line: Vec<u8>) -> Option<Action> {
        if matches!(self.state, State::AuthExchange(_)) {
            let State::AuthExchange(mut exchange) =
                std::mem::replace(&mut self.state, State::Authorization { user: None })
            else {
                unreachable!()
            };
            let step = exchange.step(&line);
            return self.sasl_step(exchange, step);
        }
        let text = String::from_utf8_lossy(&line);
        let mut words = text.split(' ');
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        let args: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
        match keyword.as_str() {
            "CAPA" => self.capa(),
            "QUIT" => return self.quit(),
            "NOOP" if self.in_transaction() => self.ok(""),
            "USER" | "PASS" | "AUTH" if self.in_transaction() => self.error("Already authenticated"),
            "USER" => self.user(&args),
            // The password is everything after "PASS " (it may contain spaces, RFC 1939 §7).
            "PASS" => return self.pass(line.get(5..).unwrap_or_default()),
            "AUTH" => return self.auth(&args),
            "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP" if !self.in_transaction() => {
                self.error("Authenticate first")
            }
            "STAT" => {
                let (count, octets) = totals(&self.maildrop().messages, Some(&self.deleted));
                self.ok(&format!("{count} {octets}"));
            }
            "LIST" => self.listing(&args, |e, _| e.size.to_string()),
            "UIDL" => self.listing(&args, |e, validity| format!("{validity}.{}", e.uid)),
            "RETR" => return self.retrieve(&args, None),
            "TOP" => {
                let Some(lines) = args.get(1).and_then(|n| n.parse::<usize>().ok()).filter(|_| args.len() == 2) else {
                    self.error("Usage: TOP message lines");
                    return None;
                };
                return self.retrieve(&args[..1], Some(lines));
            }
            "DELE" => match self.message_number(&args) {
                Ok(index) => {
                    self.deleted[index] = true;
                    self.ok(&format!("Message {} marked for deletion", index + 1));
                }
                Err(e) => self.error(e),
            },
            "RSET" => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (count, octets) = totals(&self.maildrop().messages, None);
                self.ok(&format!("{count} messages ({octets} octets)"));
            }
            "STLS" => self.error("Already under TLS"),
            _ => self.error("Unknown command"),
        }
        None
    }

    fn in_transaction(&self) -> bool {
        matches!(self.state, State::Transaction)
    }

    fn maildrop(&self) -> &Maildrop {
        self.maildrop.as_ref().expect("a maildrop in the TRANSACTION state")
    }

    fn capa(&mut self) {
        self.ok("Capability list follows");
        let mut lines = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION Portcullis"];
        if !self.in_transaction() {
            lines.extend(["USER", "SASL PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]);
        }
        for line in lines {
            self.output.extend_from_slice(line.as_bytes());
            self.output.extend_from_slice(b"\r\n");
        }
        self.output.extend_from_slice(b".\r\n");
    }

    fn quit(&mut self) -> Option<Action> {
        if self.in_transaction() {
            let messages = &self.maildrop().messages;
            let delete: Vec<u32> = messages.iter().zip(&self.deleted).filter(|(_, &d)| d).map(|(e, _)| e.uid).collect();
            self.state = State::Waiting(Pending::Update);
            return Some(Action::Update { delete });
        }
        self.ok("Bye");
        self.state = State::Closing;
        None
    }

    fn user(&mut self, args: &[&str]) {
        match args {
            [name] if name.len() <= 255 => {
                self.state = State::Authorization { user: Some(name.to_string()) };
                self.ok("Send PASS");
            }
            _ => self.error("Usage: USER name"),
        }
    }

    fn pass(&mut self, password: &[u8]) -> Option<Action> {
        let State::Authorization { user } = &mut self.state else { return None };
        let Some(username) = user.take() else {
            self.error("Send USER first");
            return None;
        };
        self.state = State::Waiting(Pending::Auth);
        let credentials =
            sasl::Credentials { authzid: String::new(), username, password: Zeroizing::new(password.to_vec()) };
        Some(Action::Authenticate { method: Method::UserPass, attempt: sasl::Attempt::Password(credentials) })
    }

    fn auth(&mut self, args: &[&str]) -> Option<Action> {
        let Some(name) = args.first() else {
            // RFC 5034 leaves this open; list the mechanisms like most servers do.
            self.ok("Mechanisms follow");
            self.output.extend_from_slice(b"PLAIN\r\nSCRAM-SHA-256\r\nSCRAM-SHA-256-PLUS\r\n.\r\n");
            return None;
        };
        let mechanism = match Mechanism::from_name(name) {
            Some(m @ (Mechanism::Plain | Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)) => m,
            _ => {
                self.error("Unsupported authentication mechanism");
                return None;
            }
        };
        let (exchange, step) =
            sasl::Exchange::start(mechanism, args.get(1).map(|a| a.as_bytes()), self.channel_binding.as_deref());
        self.sasl_step(exchange, step)
    }

    fn sasl_step(&mut self, exchange: sasl::Exchange, step: sasl::Step) -> Option<Action> {
        let method = Method::Sasl(exchange.mechanism());
        match step {
            sasl::Step::Challenge(challenge) => {
                self.output.extend_from_slice(b"+ ");
                self.output.extend_from_slice(sasl::encode(&challenge).as_bytes());
                self.output.extend_from_slice(b"\r\n");
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
                Some(Action::Authenticate { method, attempt })
            }
            sasl::Step::Failed(sasl::SaslError::Cancelled) => {
                self.state = State::Authorization { user: None };
                self.err("Authentication cancelled");
                None
            }
            sasl::Step::Failed(_) => {
                self.auth_failed();
                None
            }
        }
    }

    /// The 0-based index of a live message named by its 1-based number.
    fn message_number(&self, args: &[&str]) -> Result<usize, &'static str> {
        let [number] = args else { return Err("Expected one message number") };
        let n: usize = number.parse().map_err(|_| "Invalid message number")?;
        if n == 0 || n > self.deleted.len() {
            return Err("No such message");
        }
        if self.deleted[n - 1] {
            return Err("Message is marked for deletion");
        }
        Ok(n - 1)
    }

    fn listing(&mut self, args: &[&str], column: impl Fn(&Entry, u32) -> String) {
        let validity = self.maildrop().uidvalidity;
        if !args.is_empty() {
            match self.message_number(args) {
                Ok(index) => {
                    let value = column(&self.maildrop().messages[index], validity);
                    self.ok(&format!("{} {value}", index + 1));
                }
                Err(e) => self.error(e),
            }
            return;
        }
        let mut listing = Vec::new();
        for (i, entry) in self.maildrop().messages.iter().enumerate() {
            if !self.deleted[i] {
                listing.extend_from_slice(format!("{} {}\r\n", i + 1, column(entry, validity)).as_bytes());
            }
        }
        self.ok("Listing follows");
        self.output.extend_from_slice(&listing);
        self.output.extend_from_slice(b".\r\n");
    }

    fn retrieve(&mut self, args: &[&str], top: Option<usize>) -> Option<Action> {
        match self.message_number(args) {
            Ok(index) => {
                let uid = self.maildrop().messages[index].uid;
                self.state = State::Waiting(Pending::Fetch { top });
                Some(Action::Fetch { uid })
            }
            Err(e) => {
                self.error(e);
                None
            }
        }
    }
}

/// Message count and octets, skipping deleted ones.
fn totals(messages: &[Entry], deleted: Option<&[bool]>) -> (usize, u64) {
    messages
        .iter()
        .enumerate()
        .filter(|(i, _)| !deleted.is_some_and(|d| d[*i]))
        .fold((0, 0), |(n, octets), (_, e)| (n + 1, octets + e.size))
}

/// The header section, the blank line, and the first `lines` lines of the body (RFC 1939 §7).
fn top_of(raw: &[u8], lines: usize) -> &[u8] {
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(raw.len());
    let mut end = body_start;
    for _ in 0..lines {
        match raw[end..].iter().position(|&b| b == b'\n') {
            Some(p) => end += p + 1,
            None => {
                end = raw.len();
                break;
            }
        }
    }
    &raw[..end]
}

/// A multi-line response body: dot-stuffed, CRLF-terminated, then the "." line.
fn write_dot_stuffed(out: &mut Vec<u8>, content: &[u8]) {
    out.reserve(content.len() + content.len() / 64 + 8);
    let mut at_line_start = true;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !content.is_empty() && !content.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests;
