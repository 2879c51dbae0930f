//! STARTTLS (RFC 3207): the command, and the reset once the driver's handshake has succeeded.

use super::{Action, Pending, Session, State, Transaction};
use crate::reply::Reply;

impl Session {
    /// The TLS handshake asked for by [`Action::StartTls`] succeeded. Everything is reset
    /// (RFC 3207 §4.2): the client must EHLO again.
    pub fn tls_established(&mut self, description: String, channel_binding: Option<Vec<u8>>) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Tls)));
        self.tls = true;
        self.peer.tls = Some(description);
        self.peer.channel_binding = channel_binding;
        self.helo = None;
        // RFC 3207 §4.2: the client forgets what it learnt, PIPELINING included.
        self.pipelining_offered = false;
        self.tx = Transaction::default();
        self.input.clear();
        self.state = State::Command;
    }

    pub(super) fn starttls(&mut self) -> Option<Action> {
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
}
