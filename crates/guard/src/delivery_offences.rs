//! What the guard holds against servers that deliver on port 25, where nobody logs in and so
//! failed logins cannot tell an abuser: a source that asks for many unknown local recipients
//! is trying names (a directory harvest), and one that speaks before the greeting or sends
//! commands ahead of the replies before PIPELINING was offered is spam software (Postfix's
//! postscreen refuses such clients). The session reports these facts; here each unknown
//! recipient costs a growing delay, and enough of either within `guard.ban_window` ban the
//! source like failed logins do. Trusted networks are never delayed or banned.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use crate::ban::Ban;
use crate::logins::Failure;
use crate::source::{canonical, Source};
use crate::{doubling, humanize, prune, Guard, Now};

/// One source's offences within the ban window.
#[derive(Default)]
pub(crate) struct OffenceRecord {
    unknown_recipients: VecDeque<Instant>,
    early_talk: VecDeque<Instant>,
}

#[derive(Clone, Copy)]
enum Offence {
    UnknownRecipient,
    EarlyTalk,
}

impl Guard {
    /// A client on 25 asked for a local recipient that does not exist: how long to wait before
    /// answering, and whether its source is now banned (`guard.ban_after_unknown_recipients`).
    pub fn unknown_recipient(&self, ip: IpAddr, now: Now) -> Failure {
        let (count, bans) = self.offence_seen(ip, Offence::UnknownRecipient, now);
        let s = &self.policy().settings;
        let delay = if count == 0 { Default::default() } else { doubling(s.failure_delay, count, s.max_failure_delay) };
        Failure { delay, bans }
    }

    /// A client on 25 spoke before the greeting or pipelined before PIPELINING was offered
    /// (and was refused for it): the bans that puts in force (`guard.ban_after_early_talk`).
    pub fn early_talk(&self, ip: IpAddr, now: Now) -> Vec<Ban> {
        self.offence_seen(ip, Offence::EarlyTalk, now).1
    }

    /// Counts one offence; (offences within the window, 0 for a trusted network; bans).
    fn offence_seen(&self, ip: IpAddr, offence: Offence, now: Now) -> (u32, Vec<Ban>) {
        let ip = canonical(ip);
        let policy = self.policy();
        if policy.rules.is_trusted(ip) {
            return (0, Vec::new());
        }
        let s = &policy.settings;
        let (threshold, what) = match offence {
            Offence::UnknownRecipient => (s.ban_after_unknown_recipients, "unknown recipients"),
            Offence::EarlyTalk => (s.ban_after_early_talk, "connections talking out of turn"),
        };
        let source = Source::of(ip);
        let count = {
            let Ok(mut offences) = self.inner.offenders.lock() else { return (1, Vec::new()) };
            let record = offences.touch(&source, now.mono, OffenceRecord::default);
            let times = match offence {
                Offence::UnknownRecipient => &mut record.unknown_recipients,
                Offence::EarlyTalk => &mut record.early_talk,
            };
            times.push_back(now.mono);
            prune(times, now.mono, s.ban_window);
            while times.len() > threshold as usize {
                times.pop_front();
            }
            let count = times.len() as u32;
            if count >= threshold {
                times.clear();
            }
            count
        };
        if count < threshold {
            return (count, Vec::new());
        }
        let reason = format!("{count} {what} on port 25 within {}", humanize(s.ban_window));
        (count, self.ban_source(source, reason, now))
    }
}
