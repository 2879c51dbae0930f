//! The greeting and EHLO/HELO: the extensions offered depend on the role, on whether TLS is up
//! (RFC 3207: on 587 only STARTTLS before it, never AUTH; on 25 everything but REQUIRETLS,
//! which RFC 8689 §4 offers only over TLS, and never AUTH; DSN and REQUIRETLS on submission
//! after TLS) and on whether the client has logged in.

use super::{Session, Transaction};
use crate::reply::{self, Reply};
use crate::Role;

impl Session {
    /// The greeting, the first line of every connection (RFC 5321 §4.2).
    pub(super) fn greet(&mut self) {
        let greeting = format!("{} ESMTP Portcullis", self.config.hostname);
        self.reply(Reply::new(220, "", &greeting));
    }

    pub(super) fn ehlo(&mut self, host: String, extended: bool) {
        self.helo = Some(host);
        self.extended = extended;
        self.tx = Transaction::default();
        let hostname = self.config.hostname.clone();
        if !extended {
            self.reply(Reply::new(250, "", &hostname));
            return;
        }
        let mut lines: Vec<String> = vec![hostname];
        // On 587 nothing but STARTTLS is offered before TLS; on 25 plaintext is allowed.
        if self.tls || self.config.role == Role::Mx {
            lines.push("PIPELINING".into());
            lines.push(format!("SIZE {}", self.config.max_message_size));
            lines.push("8BITMIME".into());
            lines.push("SMTPUTF8".into());
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("CHUNKING".into());
            if self.config.role == Role::Submission {
                // RFC 3461: honoured for mail to other domains, by the queue's notices.
                lines.push("DSN".into());
                // RFC 8689 §4: only over TLS (here, always: 465, and 587 after STARTTLS);
                // the queue hands such mail on only to servers that keep the promise.
                lines.push("REQUIRETLS".into());
            }
            self.pipelining_offered = true;
        } else {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        match self.config.role {
            Role::Mx if self.tls => lines.push("REQUIRETLS".into()),
            Role::Mx => lines.push("STARTTLS".into()),
            Role::Submission if !self.tls => lines.push("STARTTLS".into()),
            Role::Submission if self.principal.is_none() => {
                lines.push("AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS".into())
            }
            Role::Submission => {}
        }
        reply::write_multiline(&mut self.output, 250, &lines);
    }
}
