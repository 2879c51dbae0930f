//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): reading the message, bounding its size, and
//! handing it to the driver for durable storage; the answer comes once it is stored.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

use super::{Action, Fact, Pending, Session, State, Transaction};
use crate::author;
use crate::message::{self, Envelope, Received};
use crate::reply::Reply;
use crate::{DeliveryOutcome, Role};

/// What a message may go over `max_message_size` by, at least, and still be read to its end.
const OVERFLOW_MIN: u64 = 1 << 20;

impl Session {
    pub fn delivery_result(&mut self, outcome: DeliveryOutcome) {
        debug_assert!(matches!(self.state, State::Waiting(Pending::Delivery)));
        self.state = State::Command;
        let reply = match outcome {
            DeliveryOutcome::Stored => {
                Reply::owned(250, "2.0.0", format!("Message stored as {}.{}", self.peer.session_id, self.messages))
            }
            DeliveryOutcome::MailboxFull(address) => {
                Reply::owned(552, "5.2.2", format!("<{address}>: Mailbox full, message not stored"))
            }
            DeliveryOutcome::SendingLimit => {
                Reply::new(451, "4.7.1", "Sending limit reached for this account; try again later")
            }
            DeliveryOutcome::Refused(refusal) => Reply::owned(refusal.code, refusal.enhanced, refusal.text),
            DeliveryOutcome::TemporaryFailure => {
                Reply::new(451, "4.3.0", "Temporary storage failure, message not stored; try again later")
            }
        };
        self.tx = Transaction::default();
        self.reply(reply);
    }

    fn transaction_ready(&mut self) -> Result<(), Reply<'static>> {
        if self.tx.from.is_none() {
            return Err(Reply::new(503, "5.5.1", "Need MAIL command first"));
        }
        if self.tx.recipients.is_empty() && self.tx.remote.is_empty() {
            return Err(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        Ok(())
    }

    pub(super) fn data(&mut self) {
        if self.tx.chunking {
            return self.error(Reply::new(503, "5.5.1", "DATA cannot follow BDAT"));
        }
        if let Err(reply) = self.transaction_ready() {
            return self.error(reply);
        }
        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        let mut receiver = DataReceiver::new();
        // The receiver recognises "." and ".." only after a CRLF; the body starts right after
        // one (the DATA line's), so prime it with that.
        receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        self.state = State::Data(receiver);
    }

    pub(super) fn read_data(&mut self) -> Option<Action> {
        let buffered = self.input.buffered();
        if buffered.is_empty() {
            return Some(Action::Read);
        }
        let mut bytes = buffered.iter();
        let finished = match &mut self.state {
            State::Data(receiver) => {
                let finished = receiver.ingest(&mut bytes, &mut self.tx.body);
                if !finished && self.tx.body.len() as u64 > self.config.max_message_size {
                    // From here on only look for the end, keep nothing.
                    let discard = DummyDataReceiver::new_data(receiver);
                    self.tx.too_big = true;
                    self.tx.body = Vec::new();
                    self.state = State::DataDiscard(discard);
                }
                finished
            }
            State::DataDiscard(receiver) => receiver.ingest(&mut bytes),
            _ => unreachable!("read_data outside DATA"),
        };
        let consumed = buffered.len() - bytes.as_slice().len();
        self.input.consume(consumed);
        self.tx.received += consumed as u64;
        if !finished && self.overflowing() {
            return None;
        }
        if !finished {
            return Some(Action::Read);
        }
        if self.tx.too_big || self.tx.body.len() as u64 > self.config.max_message_size {
            return self.message_too_big();
        }
        self.finish_message()
    }

    fn message_too_big(&mut self) -> Option<Action> {
        self.tx = Transaction::default();
        self.state = State::Command;
        self.reports.push(Fact::MessageTooBig);
        let text = format!("Message exceeds the maximum size of {} bytes", self.config.max_message_size);
        self.reply(Reply::owned(552, "5.3.4", text));
        None
    }

    /// A message that goes on far past the size limit (a never-ending DATA, a huge BDAT chunk,
    /// BDAT chunks without end) is not read to its end: answered as too big, and the
    /// connection closed, since the rest of the data cannot be told from commands. Up to twice
    /// the limit, and at least 1 MiB over it, is read and skipped, so that a client that did
    /// not know the limit (no SIZE) is told at the end, as usual.
    fn overflowing(&mut self) -> bool {
        let max = self.config.max_message_size;
        if self.tx.received <= max.saturating_add(max.max(OVERFLOW_MIN)) {
            return false;
        }
        self.message_too_big();
        self.reply(Reply::new(421, "4.7.0", "Too much data, closing connection"));
        self.state = State::Closing;
        true
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool) {
        // The chunk follows whatever we answer: it is always read (RFC 3030 §2).
        let refused = self.transaction_ready().is_err();
        self.tx.chunking |= !refused;
        self.state = State::Bdat { remaining: size, last, refused };
    }

    pub(super) fn read_chunk(&mut self) -> Option<Action> {
        let State::Bdat { remaining, last, refused } = &mut self.state else { unreachable!("read_chunk outside BDAT") };
        let available = self.input.buffered();
        let take = (*remaining).min(available.len() as u64) as usize;
        let keep = !*refused && !self.tx.too_big;
        if keep && self.tx.body.len() as u64 + take as u64 > self.config.max_message_size {
            self.tx.too_big = true;
            self.tx.body = Vec::new();
        } else if keep {
            self.tx.body.extend_from_slice(&available[..take]);
        }
        self.input.consume(take);
        *remaining -= take as u64;
        let more = *remaining > 0;
        let (last, refused) = (*last, *refused);
        self.tx.received += take as u64;
        if more && self.overflowing() {
            return None;
        }
        if more {
            return Some(Action::Read);
        }
        self.state = State::Command;
        if refused {
            if let Err(reply) = self.transaction_ready() {
                self.error(reply);
            }
            return None;
        }
        if self.tx.too_big {
            return self.message_too_big();
        }
        if last {
            return self.finish_message();
        }
        let text = format!("{} octets received", self.tx.body.len());
        self.reply(Reply::owned(250, "2.0.0", text));
        None
    }

    fn finish_message(&mut self) -> Option<Action> {
        self.messages += 1;
        let body = std::mem::take(&mut self.tx.body);
        if let Some(principal) = self.principal.as_ref().filter(|_| self.config.role == Role::Submission) {
            if let Some(foreign) = author::foreign_author(&body, principal) {
                let (size, recipients) = (body.len() as u64, self.tx.recipients.len() + self.tx.remote.len());
                self.reports.push(Fact::ForeignAuthor {
                    field: foreign.field,
                    address: foreign.address.clone(),
                    size,
                    recipients,
                });
                return self.foreign_author(foreign);
            }
        }
        let recipients = std::mem::take(&mut self.tx.recipients);
        let remote_recipients = std::mem::take(&mut self.tx.remote);
        let only = match (recipients.as_slice(), remote_recipients.as_slice()) {
            ([(one, _)], []) => Some(one.as_str()),
            ([], [one]) => Some(one.address.as_str()),
            _ => None,
        };
        let helo = self.helo.clone().unwrap_or_else(|| "unknown".into());
        let received = Received {
            helo: &helo,
            peer_ip: self.peer.ip,
            peer_name: self.peer.name.as_deref(),
            hostname: &self.config.hostname,
            id: &format!("{}.{}", self.peer.session_id, self.messages),
            protocol: message::protocol(self.extended, self.tx.smtputf8, self.tls, self.principal.is_some()),
            tls: self.peer.tls.as_deref(),
            single_recipient: only,
            account: self.principal.as_ref().map(|p| p.address.as_str()),
            now: (self.clock)(),
        };
        // Submission completes a message its client left without Date or Message-ID (RFC 6409
        // §8); mail from other servers is left as it came (RFC 5321 §7.9), or its DKIM
        // signatures, which may cover those fields' absence, would break.
        let complete = self.config.role == Role::Submission;
        let (data, trace_len) = message::prepare(&body, &received, complete);
        self.state = State::Waiting(Pending::Delivery);
        Some(Action::Deliver(Envelope {
            from: self.tx.from.clone().unwrap_or_default(),
            recipients,
            remote_recipients,
            helo,
            require_tls: self.tx.require_tls,
            notify_delivered: std::mem::take(&mut self.tx.notify_delivered),
            ret: self.tx.dsn.ret,
            envid: self.tx.dsn.envid.clone(),
            data,
            trace_len,
        }))
    }

    /// A submitted message whose From: or Sender: names someone else (RFC 5322 §3.6.2): not
    /// stored for anyone (and reported by the caller, so that the guard can count it).
    fn foreign_author(&mut self, foreign: author::ForeignAuthor) -> Option<Action> {
        let account = self.principal.as_ref().map(|p| p.address.clone()).unwrap_or_default();
        let text = format!(
            "{}: <{}> is not an address of the account {account}; send as the account or one of its aliases",
            foreign.field, foreign.address
        );
        self.tx = Transaction::default();
        self.state = State::Command;
        self.reply(Reply::owned(550, "5.7.1", text));
        None
    }
}
