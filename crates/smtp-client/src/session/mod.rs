//! The client session: the driver feeds the server's bytes in, sends what
//! [`Client::take_output`] gives, and asks [`Client::next_action`] what to do next. The
//! session never does I/O and never reads a clock; the driver owns the socket, the TLS
//! handshake and the timeouts (it asks [`Client::waiting_for`] which limit applies).
//! `handshake` holds the greeting, EHLO/HELO, STARTTLS and AUTH; `transaction` holds MAIL,
//! RCPT, DATA/BDAT and RSET.

mod handshake;
mod transaction;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use zeroize::Zeroizing;

use crate::capabilities::Capabilities;
use crate::outcome::{Cause, Disposition, Reason, SessionFailure, Stage};
use crate::reply::{Reply, ReplyLimits, ReplyReader};
use transaction::Transaction;

/// How the session treats STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never start TLS (a connection that is TLS from the start needs nothing more).
    Never,
    /// Start TLS when offered; go on in plaintext when it is not offered or refused
    /// (RFC 7435 opportunistic security). A failed handshake still ends the session.
    Opportunistic,
    /// TLS or nothing: no STARTTLS offered, or refused, ends the session.
    Required,
}

/// Credentials for a smart host (RFC 4954 AUTH PLAIN or LOGIN), sent only under TLS.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name given in EHLO/HELO: this host's fully qualified name (RFC 5321 §4.1.1.1).
    pub helo_name: String,
    pub tls: TlsMode,
    pub credentials: Option<Credentials>,
    /// Send content with BDAT when the server offers CHUNKING (RFC 3030).
    pub chunking: bool,
    pub limits: ReplyLimits,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Send [`Client::take_output`], read, and call [`Client::feed`] (or
    /// [`Client::peer_closed`], [`Client::timed_out`]).
    Read,
    /// Send the output, run the TLS handshake, then call [`Client::tls_established`] or
    /// [`Client::tls_failed`].
    StartTls,
    /// The session is idle: call [`Client::send_message`] or [`Client::quit`].
    Ready,
    /// A message is done: one result per recipient, in the message's order.
    MessageDone(MessageResult),
    /// Send the output and close the connection.
    Close(Ending),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// QUIT, as planned.
    Quit,
    Failed(SessionFailure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResult {
    pub recipients: Vec<RecipientResult>,
    /// The server offers DSN (RFC 3461): NOTIFY and ORCPT went on with the message. When
    /// false, a recipient who asked NOTIFY=SUCCESS is owed a "relayed" notice (§4.1).
    pub peer_offers_dsn: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    pub address: String,
    pub disposition: Disposition,
    /// For a delivered recipient, the reply to the end of data.
    pub reason: Reason,
}

/// A call that the session's state does not allow (a driver bug, never the server's doing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady;

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the SMTP session is not idle")
    }
}

impl std::error::Error for NotReady {}

/// A reply the session waits for, in the order the commands went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Rset,
    Quit,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::AuthPlain | Expect::AuthLoginUser | Expect::AuthLoginPassword | Expect::AuthLoginDone => {
                Stage::Auth
            }
            Expect::Mail => Stage::MailFrom,
            Expect::Rcpt(_) => Stage::RcptTo,
            Expect::Data => Stage::Data,
            Expect::DataEnd => Stage::DataEnd,
            Expect::Rset => Stage::Rset,
            Expect::Quit => Stage::Quit,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    AwaitingTls,
    Done(Ending),
}

pub struct Client {
    config: ClientConfig,
    reader: ReplyReader,
    output: Vec<u8>,
    expect: VecDeque<Expect>,
    state: State,
    caps: Capabilities,
    /// `Some(verified)` once TLS is up: whether the driver validated the certificate
    /// (REQUIRETLS needs it).
    tls: Option<bool>,
    /// STARTTLS was refused and the mode let the session go on without it.
    starttls_declined: bool,
    tx: Option<Transaction>,
    actions: VecDeque<Action>,
}

impl Client {
    /// A session on a new plaintext connection: the first thing is the server's greeting.
    pub fn new(config: ClientConfig) -> Client {
        Client::start(config, None)
    }

    /// A session on a connection that is TLS from the start (a smart host on port 465,
    /// RFC 8314); `verified` says whether the driver validated the certificate.
    pub fn over_tls(config: ClientConfig, verified: bool) -> Client {
        Client::start(config, Some(verified))
    }

    fn start(config: ClientConfig, tls: Option<bool>) -> Client {
        Client {
            reader: ReplyReader::new(config.limits),
            config,
            output: Vec::new(),
            expect: VecDeque::from([Expect::Greeting]),
            state: State::Running,
            caps: Capabilities::default(),
            tls,
            starttls_declined: false,
            tx: None,
            actions: VecDeque::new(),
        }
    }

    /// Bytes to send, in order.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Bytes waiting to be sent.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Bytes from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state == State::Running {
            self.reader.push(data);
        }
    }

    /// What the server offered in its last EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// `Some(verified)` once TLS is up.
    pub fn tls(&self) -> Option<bool> {
        self.tls
    }

    /// The reply the session waits for, so the driver can apply that stage's timeout
    /// (RFC 5321 §4.5.3.2); `None` when it waits for nothing.
    pub fn waiting_for(&self) -> Option<Stage> {
        match self.state {
            State::Running => self.expect.front().map(|e| e.stage()),
            State::AwaitingTls => Some(Stage::TlsHandshake),
            State::Done(_) => None,
        }
    }

    pub fn next_action(&mut self) -> Action {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return action;
            }
            match &self.state {
                State::Done(ending) => return Action::Close(ending.clone()),
                State::AwaitingTls => return Action::StartTls,
                State::Running => {}
            }
            let Some(&expect) = self.expect.front() else { return Action::Ready };
            match self.reader.next_reply() {
                None => return Action::Read,
                Some(Err(err)) => self.fail(expect.stage(), Cause::BadReply(err), false),
                Some(Ok(reply)) => {
                    self.expect.pop_front();
                    self.on_reply(expect, reply);
                }
            }
        }
    }

    /// The server closed the connection.
    pub fn peer_closed(&mut self) {
        self.connection_lost(Cause::Closed);
    }

    /// A wait outlasted the driver's limit; the connection is dropped.
    pub fn timed_out(&mut self) {
        self.connection_lost(Cause::TimedOut);
    }

    /// The driver could not write to or read from the connection.
    pub fn io_failed(&mut self, why: String) {
        self.connection_lost(Cause::Connect(why));
    }

    /// The handshake after STARTTLS succeeded; `verified` says whether the certificate was
    /// validated (by PKIX for MTA-STS, by TLSA for DANE). RFC 3207 §4.2: everything known
    /// from before is forgotten, and the client says EHLO again.
    pub fn tls_established(&mut self, verified: bool) {
        if self.state != State::AwaitingTls {
            return;
        }
        self.state = State::Running;
        self.tls = Some(verified);
        self.reader.clear(); // nothing the server sent before the handshake counts
        self.caps = Capabilities::default();
        self.send_line(&format!("EHLO {}", self.config.helo_name), Expect::Ehlo);
    }

    /// The handshake after STARTTLS failed; the connection is unusable.
    pub fn tls_failed(&mut self, why: String) {
        if self.state == State::AwaitingTls {
            self.state = State::Running;
            self.fail(Stage::TlsHandshake, Cause::Tls(why), false);
        }
    }

    /// Ends an idle session with QUIT.
    pub fn quit(&mut self) -> Result<(), NotReady> {
        if !self.is_idle() {
            return Err(NotReady);
        }
        self.send_line("QUIT", Expect::Quit);
        Ok(())
    }

    fn is_idle(&self) -> bool {
        self.state == State::Running && self.expect.is_empty() && self.tx.is_none() && self.actions.is_empty()
    }

    fn connection_lost(&mut self, cause: Cause) {
        match (&self.state, self.expect.front()) {
            (State::Done(_), _) => {}
            // Gone after QUIT, or while idle: nothing was lost.
            (State::Running, Some(Expect::Quit)) | (State::Running, None) if self.tx.is_none() => {
                let ending = if self.expect.is_empty() {
                    Ending::Failed(SessionFailure { stage: Stage::Quit, cause })
                } else {
                    Ending::Quit
                };
                self.expect.clear();
                self.state = State::Done(ending);
            }
            _ => {
                let stage = self.waiting_for().unwrap_or(Stage::Quit);
                self.fail(stage, cause, false);
            }
        }
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply) {
        // RFC 5321 §3.8: 421 at any point means the server is closing the channel.
        if reply.code == 421 && expect != Expect::Quit {
            self.fail(expect.stage(), Cause::Reply(reply), false);
            return;
        }
        match expect {
            Expect::Greeting
            | Expect::Ehlo
            | Expect::Helo
            | Expect::StartTls
            | Expect::AuthPlain
            | Expect::AuthLoginUser
            | Expect::AuthLoginPassword
            | Expect::AuthLoginDone => self.on_handshake_reply(expect, reply),
            Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::DataEnd | Expect::Rset => {
                self.on_transaction_reply(expect, reply)
            }
            Expect::Quit => {
                self.expect.clear();
                self.state = State::Done(Ending::Quit);
            }
        }
    }

    fn send_line(&mut self, line: &str, expect: Expect) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
        self.expect.push_back(expect);
    }

    /// Ends the session. A transaction in progress is reported first, its open recipients
    /// temporary. `polite`: the connection still works, so QUIT is sent (not waited for).
    fn fail(&mut self, stage: Stage, cause: Cause, polite: bool) {
        let failure = SessionFailure { stage, cause };
        if let Some(tx) = self.tx.take() {
            let result = tx.finish_with(|| Reason::Session(failure.clone()), self.caps.dsn);
            self.actions.push_back(Action::MessageDone(result));
        }
        self.expect.clear();
        if polite {
            self.output.extend_from_slice(b"QUIT\r\n");
        }
        self.state = State::Done(Ending::Failed(failure));
    }
}
