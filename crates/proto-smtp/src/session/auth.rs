//! AUTH (RFC 4954): starting a SASL exchange, its steps, and the driver's answers (SCRAM keys,
//! the credential check); failed attempts are counted and end the connection past the limit.

use portcullis_sasl::{self as sasl, Mechanism};

use super::{Action, Fact, Pending, Session, State};
use crate::reply::Reply;
use crate::{AuthOutcome, Principal};

impl Session {
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

    pub(super) fn auth(&mut self, mechanism: u64, initial_response: String) -> Option<Action> {
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

    pub(super) fn sasl_step(&mut self, exchange: sasl::Exchange, step: sasl::Step) -> Option<Action> {
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
}
