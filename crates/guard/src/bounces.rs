//! Outbound mail that bounces en masse: an account whose mail keeps failing for good (refused
//! with 5xx, sent to domains that do not exist, given up) is most likely a stolen one sending
//! spam from a bought or guessed list, which the hourly sending limits may not catch when the
//! run is slow. The queue runner reports each attempt's permanent failures by sender; here they
//! are counted per account within `guard.bounce_window`, counted per minute as the sending
//! limits are (at most one entry per minute of the window per account, whatever the volume),
//! and the first attempt that takes an account to `guard.bounce_alert_after` asks for an alert,
//! once until the account is back under it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::{Guard, Now};

/// An account over `guard.bounce_alert_after` permanent failures within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BounceStorm {
    /// Permanent failures within the window, this attempt's included.
    pub failures: u32,
    pub window: Duration,
}

/// One account's permanent failures, per minute, and whether it was alerted on.
#[derive(Default)]
pub(crate) struct BounceRecord {
    pub(crate) minutes: VecDeque<(Instant, u32)>,
    alerted: bool,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Guard {
    /// `failures` recipients of mail from `account` (its address) failed for good in one
    /// delivery attempt: a [`BounceStorm`] when that takes the account to
    /// `guard.bounce_alert_after` within `guard.bounce_window` for the first time since it was
    /// last under it; `None` otherwise, and always when the alert is off (0).
    pub fn permanent_failures(&self, account: &str, failures: u32, now: Now) -> Option<BounceStorm> {
        let policy = self.policy();
        let (threshold, window) = (policy.settings.bounce_alert_after, policy.settings.bounce_window);
        if threshold == 0 || account.is_empty() {
            return None;
        }
        let Ok(mut bounces) = self.inner.bounces.lock() else { return None };
        let record = bounces.touch(&account.to_ascii_lowercase(), now.mono, BounceRecord::default);
        // A minute counts until all of it is older than the window: an alert is never lifted
        // early, and at most a minute late.
        while record.minutes.front().is_some_and(|(start, _)| now.mono.duration_since(*start) >= window + MINUTE) {
            record.minutes.pop_front();
        }
        if failures > 0 {
            match record.minutes.back_mut() {
                Some((start, n)) if now.mono.duration_since(*start) < MINUTE => *n = n.saturating_add(failures),
                _ => record.minutes.push_back((now.mono, failures)),
            }
        }
        let total = record.minutes.iter().fold(0u32, |sum, (_, n)| sum.saturating_add(*n));
        if total < threshold {
            record.alerted = false;
            return None;
        }
        if std::mem::replace(&mut record.alerted, true) {
            return None;
        }
        Some(BounceStorm { failures: total, window })
    }
}
