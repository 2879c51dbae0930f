//! Reading a command line: HTTP spoken to the mail port, the command count, the STARTTLS gate
//! of port 587, port 25's rules (no pipelining before it was offered, only QUIT after a 554
//! greeting, no AUTH), and the hand-over of each command to its phase; commands that need no
//! phase of their own (NOOP, RSET, QUIT, VRFY, HELP) are answered here.

use smtp_proto::{Error as ParseError, Request};

use super::{Action, Fact, Session, State, Transaction};
use crate::reply::Reply;
use crate::Role;

impl Session {
    pub(super) fn command(&mut self, mut line: Vec<u8>) -> Option<Action> {
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
        // Only 587 holds everything back until STARTTLS; 25 allows plaintext (RFC 3207 §4).
        let gated = !self.tls && self.config.role == Role::Submission;
        let request = match parsed {
            Ok(request) => request,
            Err(e) => {
                let refused = if gated { Some("(unparsable)") } else { None };
                if let Some(what) = refused {
                    self.reports.push(Fact::CommandBeforeStartTls(what));
                    self.error(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
                } else {
                    self.error(parse_error_reply(&e));
                }
                return None;
            }
        };

        if self.config.role == Role::Mx {
            if let Some(action) = self.mx_rules(&request) {
                return action;
            }
        }
        if gated
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
            Request::Mail { from } => return self.mail(from),
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
}

impl Session {
    /// Port 25's rules before a command runs: `Some` when it must not run (refused, or the
    /// connection closing), with the action that follows (none).
    fn mx_rules(&mut self, request: &Request<String>) -> Option<Option<Action>> {
        // RFC 2920 §3.1: without PIPELINING offered, a client waits for each reply. Commands
        // already buffered behind this one were sent ahead of it: ratware, not a mail server
        // (a BDAT chunk follows its command by design, RFC 3030 §2).
        if !self.pipelining_offered && !matches!(request, Request::Bdat { .. }) && !self.input.is_empty() {
            self.reports.push(Fact::UnofferedPipelining);
            self.reply(Reply::new(554, "5.5.0", "Improper command pipelining: wait for each reply"));
            self.state = State::Closing;
            return Some(None);
        }
        if self.refused_at_connect && !matches!(request, Request::Quit) {
            self.error(Reply::new(503, "5.5.1", "Bad sequence of commands: this server refused you, send QUIT"));
            return Some(None);
        }
        if matches!(request, Request::Auth { .. }) {
            self.reports.push(Fact::AuthOnMx);
            self.error(Reply::new(
                503,
                "5.5.1",
                "Authentication is not available on this port; mail clients submit on port 465 or 587",
            ));
            return Some(None);
        }
        None
    }
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
