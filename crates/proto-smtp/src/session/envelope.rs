//! MAIL FROM and RCPT TO: the sender must be the authenticated account, recipients are looked up
//! by the driver one at a time, and their number is bounded per transaction.

use super::{Action, Pending, Session, State};
use crate::reply::Reply;
use crate::RecipientOutcome;

impl Session {
    pub fn recipient_result(&mut self, outcome: RecipientOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Recipient)));
        self.state = State::Command;
        let Some(address) = self.tx.pending_recipient.take() else { return };
        let reply = match outcome {
            RecipientOutcome::Local(account) => {
                if !self.tx.recipients.iter().any(|(a, _)| *a == address) {
                    self.tx.recipients.push((address, account));
                }
                Reply::new(250, "2.1.5", "Recipient ok")
            }
            RecipientOutcome::UnknownUser => {
                self.errors += 1;
                Reply::owned(550, "5.1.1", format!("<{address}>: Recipient address rejected: no such user here"))
            }
            RecipientOutcome::NotLocal => {
                self.errors += 1;
                Reply::owned(
                    550,
                    "5.7.1",
                    format!("<{address}>: Relaying is not enabled on this server; only local recipients are accepted"),
                )
            }
            RecipientOutcome::MailboxFull => Reply::owned(552, "5.2.2", format!("<{address}>: Mailbox full")),
            RecipientOutcome::TemporaryFailure => Reply::new(451, "4.3.0", "Temporary failure, try again later"),
        };
        self.reply(reply);
    }

    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        let Some(principal) = &self.principal else {
            return self.error(Reply::new(530, "5.7.0", "Authentication required"));
        };
        if self.tx.from.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Sender already specified"));
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if !from.address.is_ascii() && from.flags & smtp_proto::MAIL_SMTPUTF8 == 0 {
            return self.error(Reply::new(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter"));
        }
        if from.size as u64 > self.config.max_message_size {
            return self.error(Reply::owned(
                552,
                "5.3.4",
                format!("Message size exceeds the maximum of {} bytes", self.config.max_message_size),
            ));
        }
        if !same_address(&from.address, &principal.address) {
            let text =
                format!("<{}>: Sender address is not yours (authenticated as {})", from.address, principal.address);
            return self.error(Reply::owned(553, "5.7.1", text));
        }
        self.tx.from = Some(from.address);
        self.reply(Reply::new(250, "2.1.0", "Sender ok"));
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
        if self.tx.recipients.len() >= self.config.max_recipients {
            self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
            return None;
        }
        // smtp-proto hands `<postmaster>` over as the empty address (RFC 5321 §4.5.1).
        let address = if to.address.is_empty() { format!("postmaster@{}", self.config.hostname) } else { to.address };
        self.tx.pending_recipient = Some(address.clone());
        self.state = State::Waiting(Pending::Recipient);
        Some(Action::LookupRecipient { address })
    }
}

/// Whether a MAIL FROM address is the account's: the domain compares case-insensitively, and
/// local parts do too, since accounts have one lower-case spelling.
fn same_address(given: &str, account: &str) -> bool {
    given.to_lowercase() == account
}
