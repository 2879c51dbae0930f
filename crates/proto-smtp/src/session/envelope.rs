//! MAIL FROM and RCPT TO: on 465/587 the sender must be the authenticated account or one of its
//! aliases; on 25 any sender (the null one too, for bounces) is checked by the driver;
//! recipients are looked up by the driver one at a time, and their number is bounded per
//! transaction.

use super::{dsn, Action, Pending, Session, State};
use crate::reply::Reply;
use crate::{RecipientOutcome, RemoteRecipient, Role, SenderOutcome};

impl Session {
    pub fn recipient_result(&mut self, outcome: RecipientOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Recipient)));
        self.state = State::Command;
        let Some(address) = self.tx.pending_recipient.take() else { return };
        let reply = match outcome {
            RecipientOutcome::Local(account) => {
                let dsn = std::mem::take(&mut self.tx.pending_dsn);
                if !self.tx.recipients.iter().any(|(a, _)| *a == address) {
                    // RFC 3461 §4.1: final delivery owes a "delivered" notice when asked.
                    if dsn.notify.as_deref().is_some_and(|n| n.contains("SUCCESS")) {
                        self.tx.notify_delivered.push((address.clone(), dsn.orcpt));
                    }
                    self.tx.recipients.push((address, account));
                }
                Reply::new(250, "2.1.5", "Recipient ok")
            }
            RecipientOutcome::Remote if self.config.role == Role::Submission && self.principal.is_some() => {
                let dsn = std::mem::take(&mut self.tx.pending_dsn);
                if !self.tx.remote.iter().any(|r| r.address == address) {
                    self.tx.remote.push(RemoteRecipient { address, notify: dsn.notify, orcpt: dsn.orcpt });
                }
                Reply::new(250, "2.1.5", "Recipient ok")
            }
            RecipientOutcome::UnknownUser => {
                self.errors += 1;
                Reply::owned(550, "5.1.1", format!("<{address}>: Recipient address rejected: no such user here"))
            }
            RecipientOutcome::NotLocal | RecipientOutcome::Remote => {
                self.errors += 1;
                Reply::owned(
                    550,
                    "5.7.1",
                    format!("<{address}>: Relaying is not enabled on this server; only local recipients are accepted"),
                )
            }
            RecipientOutcome::MailboxFull => Reply::owned(552, "5.2.2", format!("<{address}>: Mailbox full")),
            // RFC 3463 X.7.1: refused by policy, for now (450: try later).
            RecipientOutcome::RateLimited => {
                Reply::new(450, "4.7.1", "Too many recipients from your address; try again later")
            }
            RecipientOutcome::TemporaryFailure => Reply::new(451, "4.3.0", "Temporary failure, try again later"),
        };
        self.reply(reply);
    }

    /// The sender checks asked for by [`Action::CheckSender`] are done (port 25).
    pub fn sender_result(&mut self, outcome: SenderOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Sender)));
        self.state = State::Command;
        let Some(address) = self.tx.pending_from.take() else { return };
        match outcome {
            SenderOutcome::Accept => {
                self.tx.from = Some(address);
                self.reply(Reply::new(250, "2.1.0", "Sender ok"));
            }
            SenderOutcome::Refused(refusal) => {
                // The transaction never started: its parameters go with it.
                self.tx.smtputf8 = false;
                self.tx.require_tls = false;
                self.errors += 1;
                self.reply(Reply::owned(refusal.code, refusal.enhanced, refusal.text));
            }
        }
    }

    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Option<Action> {
        if self.helo.is_none() {
            self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
            return None;
        }
        if self.config.role == Role::Submission && self.principal.is_none() {
            self.error(Reply::new(530, "5.7.0", "Authentication required"));
            return None;
        }
        if self.tx.from.is_some() {
            self.error(Reply::new(503, "5.5.1", "Sender already specified"));
            return None;
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
            return None;
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            self.error(Reply::new(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter"));
            return None;
        }
        if from.size as u64 > self.config.max_message_size {
            self.error(Reply::owned(
                552,
                "5.3.4",
                format!("Message size exceeds the maximum of {} bytes", self.config.max_message_size),
            ));
            return None;
        }
        let require_tls = from.flags & smtp_proto::MAIL_REQUIRETLS != 0;
        if require_tls && !self.tls {
            // RFC 8689 §4: offered only over TLS; RFC 3463 X.7.10: encryption needed.
            self.error(Reply::new(530, "5.7.10", "REQUIRETLS needs STARTTLS first"));
            return None;
        }
        // DSN is offered on submission only; port 25 ignores what a client sends anyway.
        let mail_dsn = match self.config.role {
            Role::Submission => match dsn::mail_dsn(&from) {
                Ok(d) => d,
                Err(reply) => {
                    self.error(reply);
                    return None;
                }
            },
            Role::Mx => dsn::MailDsn::default(),
        };
        self.tx.smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        self.tx.require_tls = require_tls;
        match (self.config.role, &self.principal) {
            (Role::Mx, _) => {
                self.tx.pending_from = Some(from.address.clone());
                self.state = State::Waiting(Pending::Sender);
                return Some(Action::CheckSender { address: from.address });
            }
            (Role::Submission, Some(principal)) if !principal.owns(&from.address) => {
                let text =
                    format!("<{}>: Sender address is not yours (authenticated as {})", from.address, principal.address);
                self.tx.smtputf8 = false;
                self.tx.require_tls = false;
                self.error(Reply::owned(553, "5.7.1", text));
                return None;
            }
            (Role::Submission, _) => {}
        }
        self.tx.dsn = mail_dsn;
        self.tx.from = Some(from.address);
        self.reply(Reply::new(250, "2.1.0", "Sender ok"));
        None
    }

    pub(super) fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Option<Action> {
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
        if self.tx.recipients.len() + self.tx.remote.len() >= self.config.max_recipients {
            self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
            return None;
        }
        self.tx.pending_dsn = match self.config.role {
            Role::Submission => match dsn::rcpt_dsn(&to) {
                Ok(d) => d,
                Err(reply) => {
                    self.error(reply);
                    return None;
                }
            },
            Role::Mx => dsn::RcptDsn::default(),
        };
        // smtp-proto hands `<postmaster>` over as the empty address (RFC 5321 §4.5.1).
        let address = if to.address.is_empty() { format!("postmaster@{}", self.config.hostname) } else { to.address };
        self.tx.pending_recipient = Some(address.clone());
        self.state = State::Waiting(Pending::Recipient);
        Some(Action::LookupRecipient { address })
    }
}
