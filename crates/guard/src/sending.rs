//! Hourly sending limits per account (a compromised account is used to spam): messages and
//! recipients in the last hour, counted per minute rather than per message, so that an
//! account's window holds at most 61 entries whatever the limits. The store counts the same
//! for every node (`shared_counts`); the guard decides by the larger of the two counts, and
//! refuses when the store could not count (fail safe: see [`SendingLimit::Uncounted`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::shared_counts::Sent;
use crate::{Guard, Now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendingLimit {
    Messages(u32),
    Recipients(u32),
    /// The store could not say what the account sent on every node: refused for now (a
    /// temporary failure, no alert). Letting it through would let a stolen account send
    /// without a limit for as long as the store is away; refusing costs nothing, since the
    /// message could not be stored either.
    Uncounted,
}

/// A message refused by the sending limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    pub limit: SendingLimit,
    /// The first refusal by this node since the account was last under its limits here
    /// (alert once per crossing, by each node that refuses).
    pub first: bool,
}

/// Messages sent by an account in the last hour, counted per minute, and whether it is being
/// refused now. Per minute, not per message: at most 61 entries per account whatever the
/// limits (a list per message held 24 bytes for every message of the hour).
#[derive(Default)]
pub(crate) struct SendingWindow {
    pub(crate) minutes: VecDeque<SentInMinute>,
    limited: bool,
}

/// What an account sent in the minute from `start`.
pub(crate) struct SentInMinute {
    start: Instant,
    messages: u32,
    recipients: u32,
}

/// The granularity of the sending window: a minute's messages count until the whole minute is
/// an hour old (so a limit is never lifted early, and at most a minute late).
const SENDING_BUCKET: Duration = Duration::from_secs(60);

impl Guard {
    /// A message is about to be accepted from `account` for `recipients` recipients; `shared`:
    /// what the store counted the account sending within the hour on every node, before this
    /// message (`None`: the store could not say).
    pub fn message(&self, account: i64, recipients: u32, shared: Option<Sent>, now: Now) -> Result<(), LimitHit> {
        let Some(shared) = shared else { return Err(LimitHit { limit: SendingLimit::Uncounted, first: false }) };
        let policy = self.policy();
        let s = &policy.settings;
        let hour = Duration::from_secs(3600);
        let Ok(mut sending) = self.inner.sending.lock() else { return Ok(()) };
        let expired = |m: &SentInMinute| now.mono.duration_since(m.start) >= hour + SENDING_BUCKET;
        if sending.len() > s.max_tracked {
            sending.retain(|_, w| w.minutes.back().is_some_and(|m| !expired(m)));
        }
        let window = sending.entry(account).or_default();
        while window.minutes.front().is_some_and(expired) {
            window.minutes.pop_front();
        }
        // This node's own count is a floor: the store's may have missed what it sent while
        // the store was away.
        let messages: u32 = window.minutes.iter().map(|m| m.messages).sum::<u32>().max(shared.messages);
        let sent: u32 = window.minutes.iter().map(|m| m.recipients).sum::<u32>().max(shared.recipients);
        let limit = if messages >= s.max_messages_per_hour {
            Some(SendingLimit::Messages(s.max_messages_per_hour))
        } else if sent.saturating_add(recipients) > s.max_recipients_per_hour {
            Some(SendingLimit::Recipients(s.max_recipients_per_hour))
        } else {
            None
        };
        match limit {
            Some(limit) => {
                let first = !std::mem::replace(&mut window.limited, true);
                Err(LimitHit { limit, first })
            }
            None => {
                window.limited = false;
                match window.minutes.back_mut() {
                    Some(m) if now.mono.duration_since(m.start) < SENDING_BUCKET => {
                        m.messages += 1;
                        m.recipients = m.recipients.saturating_add(recipients);
                    }
                    _ => window.minutes.push_back(SentInMinute { start: now.mono, messages: 1, recipients }),
                }
                Ok(())
            }
        }
    }
}
