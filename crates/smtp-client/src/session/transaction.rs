//! One message: the checks made before asking the server (SIZE, 8BITMIME, SMTPUTF8,
//! REQUIRETLS, addresses), MAIL FROM with the parameters the server supports, RCPT TO per
//! recipient, DATA (dot-stuffed) or BDAT, and RSET after a transaction that did not end
//! with the content. With PIPELINING (RFC 2920) MAIL, the RCPTs and DATA go out together and
//! the replies are matched in order; without it, one command per reply.

use super::{Action, Client, Expect, MessageResult, NotReady, RecipientResult};
use crate::content;
use crate::envelope::{address_is_sendable, xtext_encode, Message};
use crate::outcome::{disposition_of, Cause, Disposition, LocalReason, Reason, SessionFailure, Stage};
use crate::reply::Reply;

/// The message being sent.
pub(super) struct Transaction {
    message: Message,
    results: Vec<Option<RecipientResult>>,
    /// Recipients to send RCPT for, in order; `next_rcpt` is the next to send (unpipelined).
    to_send: Vec<usize>,
    next_rcpt: usize,
    /// RCPT replies still to come.
    rcpt_pending: usize,
    accepted: Vec<usize>,
    mail_failed: bool,
    bdat: bool,
    pipelined: bool,
    /// The content went out: the end-of-data reply decides the accepted recipients.
    content_sent: bool,
}

impl Transaction {
    fn set(&mut self, index: usize, disposition: Disposition, reason: Reason) {
        if let Some(slot) = self.results.get_mut(index) {
            if slot.is_none() {
                *slot = Some(RecipientResult {
                    address: self.message.recipients[index].address.clone(),
                    disposition,
                    reason,
                });
            }
        }
    }

    /// Every recipient without an outcome gets `reason`, temporary.
    pub(super) fn finish_with(mut self, reason: impl Fn() -> Reason, peer_offers_dsn: bool) -> MessageResult {
        for index in 0..self.results.len() {
            self.set(index, Disposition::Temporary, reason());
        }
        MessageResult { recipients: self.results.into_iter().flatten().collect(), peer_offers_dsn }
    }
}

impl Client {
    /// Starts sending `message`; its [`MessageResult`] comes as [`Action::MessageDone`].
    pub fn send_message(&mut self, message: &Message) -> Result<(), NotReady> {
        if !self.is_idle() {
            return Err(NotReady);
        }
        let recipients = &message.recipients;
        let smtputf8 =
            message.params.smtputf8 || !message.sender.is_ascii() || recipients.iter().any(|r| !r.address.is_ascii());
        let eight_bit = message.params.eight_bit || content::is_eight_bit(&message.content);
        let mut tx = Transaction {
            message: message.clone(),
            results: vec![None; recipients.len()],
            to_send: Vec::new(),
            next_rcpt: 0,
            rcpt_pending: 0,
            accepted: Vec::new(),
            mail_failed: false,
            bdat: self.config.chunking && self.caps.chunking,
            pipelined: self.caps.pipelining,
            content_sent: false,
        };
        let whole_message = self.refusal(message, smtputf8, eight_bit);
        for (index, recipient) in recipients.iter().enumerate() {
            match whole_message {
                Some(local) => tx.set(index, local.disposition(), Reason::Local(local)),
                None if !address_is_sendable(&recipient.address) || recipient.address.is_empty() => {
                    tx.set(index, Disposition::Permanent, Reason::Local(LocalReason::BadAddress))
                }
                None => tx.to_send.push(index),
            }
        }
        if tx.to_send.is_empty() {
            let result = tx.finish_with(|| Reason::Local(LocalReason::BadAddress), self.caps.dsn);
            self.actions.push_back(Action::MessageDone(result));
            return Ok(());
        }
        let mail = self.mail_command(message, smtputf8, eight_bit);
        self.send_line(&mail, Expect::Mail);
        if tx.pipelined {
            for position in 0..tx.to_send.len() {
                let index = tx.to_send[position];
                let rcpt = self.rcpt_command(message, index);
                self.send_line(&rcpt, Expect::Rcpt(index));
            }
            tx.next_rcpt = tx.to_send.len();
            tx.rcpt_pending = tx.to_send.len();
            if !tx.bdat {
                self.send_line("DATA", Expect::Data); // RFC 2920 §3.1: DATA may end a group
            }
        }
        self.tx = Some(tx);
        Ok(())
    }

    /// A reason the whole message cannot go to this server, found before asking it.
    fn refusal(&self, message: &Message, smtputf8: bool, eight_bit: bool) -> Option<LocalReason> {
        if !address_is_sendable(&message.sender) {
            return Some(LocalReason::BadAddress);
        }
        // RFC 8689 §4.2.1: validated TLS, and the server promises to keep requiring it.
        if message.params.requiretls && !(self.tls == Some(true) && self.caps.requiretls) {
            return Some(LocalReason::RequireTlsUnmet);
        }
        if smtputf8 && !self.caps.smtputf8 {
            return Some(LocalReason::NeedsSmtpUtf8); // RFC 6531 §3.2
        }
        if eight_bit && !self.caps.eight_bit_mime {
            return Some(LocalReason::NeedsEightBitMime); // RFC 6152 §3
        }
        match self.caps.size {
            Some(limit) if limit > 0 && message.content.len() as u64 > limit => Some(LocalReason::TooBig { limit }),
            _ => None,
        }
    }

    fn mail_command(&self, message: &Message, smtputf8: bool, eight_bit: bool) -> String {
        let mut line = format!("MAIL FROM:<{}>", message.sender);
        if self.caps.size.is_some() {
            line.push_str(&format!(" SIZE={}", message.content.len())); // RFC 1870 §6
        }
        if eight_bit {
            line.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            if let Some(ret) = message.params.ret {
                line.push_str(&format!(" RET={}", ret.param()));
            }
            // RFC 3461 §4.4: ENVID is xtext of printable ASCII, at most 100 characters.
            if let Some(envid) = message.params.envid.as_ref().filter(|e| e.is_ascii() && e.len() <= 100) {
                line.push_str(&format!(" ENVID={}", xtext_encode(envid)));
            }
        }
        if message.params.requiretls {
            line.push_str(" REQUIRETLS");
        }
        line
    }

    fn rcpt_command(&self, message: &Message, index: usize) -> String {
        let recipient = &message.recipients[index];
        let mut line = format!("RCPT TO:<{}>", recipient.address);
        if self.caps.dsn {
            if let Some(notify) = recipient.notify {
                line.push_str(&format!(" NOTIFY={}", notify.param()));
            }
            if let Some(orcpt) = recipient.original.as_ref().and_then(|o| o.param()) {
                line.push_str(&format!(" ORCPT={orcpt}"));
            }
        }
        line
    }

    pub(super) fn on_transaction_reply(&mut self, expect: Expect, reply: Reply) {
        let Some(mut tx) = self.tx.take() else {
            // RSET outside a transaction is only ever sent after one ended.
            self.fail(expect.stage(), Cause::Unexpected(reply), true);
            return;
        };
        match expect {
            Expect::Mail => {
                if !reply.is_positive() {
                    tx.mail_failed = true;
                    let disposition = disposition_of(&reply);
                    for index in 0..tx.results.len() {
                        tx.set(index, disposition, Reason::Reply { stage: Stage::MailFrom, reply: reply.clone() });
                    }
                    if !tx.pipelined {
                        return self.reset(tx);
                    }
                } else if !tx.pipelined {
                    self.send_next_rcpt(&mut tx);
                }
            }
            Expect::Rcpt(index) => {
                tx.rcpt_pending = tx.rcpt_pending.saturating_sub(1);
                if reply.is_positive() {
                    tx.accepted.push(index);
                } else {
                    tx.set(index, disposition_of(&reply), Reason::Reply { stage: Stage::RcptTo, reply });
                }
                if tx.mail_failed {
                    // Pipelined behind a refused MAIL: the replies are read and ignored.
                } else if !tx.pipelined && tx.next_rcpt < tx.to_send.len() {
                    self.send_next_rcpt(&mut tx);
                } else if tx.rcpt_pending == 0 && (tx.bdat || !tx.pipelined) {
                    if tx.accepted.is_empty() {
                        return self.reset(tx);
                    }
                    self.send_content_or_data(&mut tx);
                }
            }
            Expect::Data if reply.code == 354 => {
                if tx.accepted.is_empty() || tx.mail_failed {
                    // RFC 2920 §3.1: pipelined DATA accepted with no recipient: end the empty
                    // content at once and forget the transaction.
                    self.output.extend_from_slice(b".\r\n");
                    self.expect.push_back(Expect::DataEnd);
                } else {
                    self.output.extend_from_slice(&content::dot_stuffed(&tx.message.content));
                    self.expect.push_back(Expect::DataEnd);
                    tx.content_sent = true;
                }
            }
            Expect::Data => {
                if !tx.mail_failed {
                    // A 2yz to DATA is no invitation to send: treat it as a temporary failure.
                    let disposition = match disposition_of(&reply) {
                        Disposition::Delivered => Disposition::Temporary,
                        other => other,
                    };
                    for index in tx.accepted.clone() {
                        tx.set(index, disposition, Reason::Reply { stage: Stage::Data, reply: reply.clone() });
                    }
                }
                return self.reset(tx);
            }
            Expect::DataEnd if !tx.content_sent => return self.reset(tx),
            Expect::DataEnd => {
                let disposition = disposition_of(&reply);
                for index in tx.accepted.clone() {
                    tx.set(index, disposition, Reason::Reply { stage: Stage::DataEnd, reply: reply.clone() });
                }
                // RFC 5321 §4.1.1.4: the end-of-data reply ends the transaction either way.
                return self.complete(tx);
            }
            Expect::Rset if reply.is_positive() => return self.complete(tx),
            Expect::Rset => {
                // The server's state is unknown: report the message, then leave.
                self.tx = Some(tx);
                self.fail(Stage::Rset, Cause::Reply(reply), true);
                return;
            }
            _ => {
                self.tx = Some(tx);
                self.fail(expect.stage(), Cause::Unexpected(reply), true);
                return;
            }
        }
        self.tx = Some(tx);
    }

    fn send_next_rcpt(&mut self, tx: &mut Transaction) {
        let index = tx.to_send[tx.next_rcpt];
        let rcpt = self.rcpt_command(&tx.message, index);
        self.send_line(&rcpt, Expect::Rcpt(index));
        tx.next_rcpt += 1;
        tx.rcpt_pending += 1;
    }

    fn send_content_or_data(&mut self, tx: &mut Transaction) {
        if tx.bdat {
            // RFC 3030 §2: "BDAT size LAST", then exactly size octets, no stuffing.
            let body = content::canonical(&tx.message.content);
            self.output.extend_from_slice(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
            self.output.extend_from_slice(&body);
            self.expect.push_back(Expect::DataEnd);
            tx.content_sent = true;
        } else {
            self.send_line("DATA", Expect::Data);
        }
    }

    /// Ends a transaction that did not end with its content: RSET, then the result.
    fn reset(&mut self, tx: Transaction) {
        // Replies of pipelined commands still to come are read first (they precede RSET's).
        self.send_line("RSET", Expect::Rset);
        self.tx = Some(tx);
    }

    /// Reports the message. Every recipient has its outcome by now (the end-of-data or
    /// RSET reply is the last of a transaction); the fallback only keeps the type total.
    fn complete(&mut self, tx: Transaction) {
        let lost = SessionFailure { stage: Stage::DataEnd, cause: Cause::Closed };
        let result = tx.finish_with(|| Reason::Session(lost.clone()), self.caps.dsn);
        self.actions.push_back(Action::MessageDone(result));
    }
}
