//! Port 25 before the greeting: the driver has checked the client (reverse DNS, DNSBL) and
//! waited out the greeting delay; a client that spoke meanwhile is an early talker (RFC 5321
//! §3.1: the client waits for the greeting), refused as Postfix's postscreen does, and a
//! listed one is greeted with 554 and may only QUIT.

use super::{Fact, Pending, Session, State};
use crate::reply::Reply;
use crate::ClientOutcome;

impl Session {
    /// The checks asked for by [`super::Action::CheckClient`] are done.
    pub fn client_checked(&mut self, outcome: ClientOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Client)));
        self.state = State::Command;
        self.peer.name = outcome.name;
        let hostname = self.config.hostname.clone();
        if !self.input.is_empty() {
            self.reports.push(Fact::EarlyTalker);
            // No enhanced code in a greeting (RFC 2034 §3).
            self.reply(Reply::owned(554, "", format!("{hostname} Protocol error: you spoke before my greeting")));
            self.state = State::Closing;
            return;
        }
        match outcome.refuse {
            // RFC 5321 §3.1: a 554 greeting, then only QUIT (anything else gets 503).
            Some(text) => {
                self.reply(Reply::owned(554, "", format!("{hostname} {text}")));
                self.refused_at_connect = true;
            }
            None => self.greet(),
        }
    }
}
