//! The session state machine: the driver feeds bytes in, takes bytes out, and asks
//! [`Session::next_action`] what to do next; each protocol phase lives in a file of its own
//! (`greeting` for port 25's checks before the greeting, `ehlo`, `starttls`, `auth`,
//! `envelope` for MAIL/RCPT, `data` for DATA/BDAT), and `command` reads a command line and
//! hands it to its phase.

mod auth;
mod command;
mod data;
mod dsn;
mod ehlo;
mod envelope;
mod greeting;
mod starttls;

use portcullis_lines::{Line, LineBuffer};
use portcullis_sasl::{self as sasl, Mechanism};
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

use crate::reply::Reply;
use crate::{AccountId, Config, Envelope, Peer, Principal, RemoteRecipient, Role};

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Send [`Session::take_output`], then read and call [`Session::feed`] (or
    /// [`Session::peer_closed`]).
    Read,
    /// Port 25, before the greeting: check the client (its reverse DNS, the DNSBL zones) and
    /// wait out the greeting delay, feeding whatever the client sends meanwhile
    /// ([`Session::feed`]: an early talker is refused), then call
    /// [`Session::client_checked`].
    CheckClient,
    /// Port 25, MAIL FROM: check the sender (its domain, the source's message rate), then
    /// call [`Session::sender_result`]. The address is empty for the null sender (bounces).
    CheckSender { address: String },
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
    /// Port 25: the client sent before the greeting (RFC 5321 §3.1: it must wait for it).
    EarlyTalker,
    /// Port 25: the client sent commands ahead of the replies before PIPELINING was offered
    /// (RFC 2920 §3.1).
    UnofferedPipelining,
    /// Port 25: AUTH, which belongs on 465 and 587.
    AuthOnMx,
    /// Submission: a message whose From: or Sender: (`field`) names an address that is not
    /// the account's nor one of its aliases; refused with `550 5.7.1`.
    ForeignAuthor {
        field: &'static str,
        address: String,
        size: u64,
        recipients: usize,
    },
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
    Client,
    Sender,
    Tls,
    ScramKeys,
    Auth,
    Recipient,
    Delivery,
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    /// The sender being checked (port 25).
    pending_from: Option<String>,
    /// MAIL FROM carried SMTPUTF8 (RFC 6531), for the Received header's protocol.
    smtputf8: bool,
    /// MAIL FROM carried REQUIRETLS (RFC 8689).
    require_tls: bool,
    /// MAIL FROM's RFC 3461 parameters (submission).
    dsn: dsn::MailDsn,
    recipients: Vec<(String, AccountId)>,
    /// Local recipients whose NOTIFY asks for SUCCESS, with their ORCPT (submission).
    notify_delivered: Vec<(String, Option<String>)>,
    /// Recipients in other domains, to be queued (submission only).
    remote: Vec<RemoteRecipient>,
    /// The recipient being looked up, and its RFC 3461 parameters.
    pending_recipient: Option<String>,
    pending_dsn: dsn::RcptDsn,
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

pub struct Session {
    config: Config,
    peer: Peer,
    clock: fn() -> i64,
    input: LineBuffer,
    output: Vec<u8>,
    state: State,
    tls: bool,
    helo: Option<String>,
    /// The client greeted with EHLO rather than HELO.
    extended: bool,
    /// An EHLO reply offering PIPELINING was sent (since TLS started, if it did): only then
    /// may a client on 25 send commands ahead of replies (RFC 2920 §3.1).
    pipelining_offered: bool,
    /// Port 25: the greeting was 554; nothing but QUIT is accepted (RFC 5321 §3.1).
    refused_at_connect: bool,
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
    /// A new connection. On 465 and 587 the greeting is already in the output; on 25 the
    /// first action is [`Action::CheckClient`], and the greeting follows its outcome.
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
            extended: false,
            pipelining_offered: false,
            refused_at_connect: false,
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
        match session.config.role {
            // The greeting waits for the client's checks (and the greeting delay).
            Role::Mx => {
                session.state = State::Waiting(Pending::Client);
                session.queued = Some(Action::CheckClient);
            }
            Role::Submission => session.greet(),
        }
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
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mx;
