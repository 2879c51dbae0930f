//! The greeting and EHLO/HELO: the extensions offered depend on whether TLS is up (RFC 3207:
//! before STARTTLS only STARTTLS is offered, never AUTH) and on whether the client has logged in.

use super::{Session, Transaction};
use crate::reply::{self, Reply};

impl Session {
    /// The greeting, the first line of every connection (RFC 5321 §4.2).
    pub(super) fn greet(&mut self) {
        let greeting = format!("{} ESMTP Portcullis", self.config.hostname);
        self.reply(Reply::new(220, "", &greeting));
    }

    pub(super) fn ehlo(&mut self, host: String, extended: bool) {
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
}
