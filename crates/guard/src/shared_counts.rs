//! The counts every node shares (issue 17): an account's sending over the hour, a source's
//! failed logins over `guard.ban_window`, and login attempts from unknown addresses over the
//! same window per source and per account, kept by the store in minute buckets so that three
//! nodes behind a balancer count one window, not three. The guard says which bucket a fact goes
//! in and where each window starts ([`Guard::buckets`]); the server has the store count and
//! gives the totals to [`Guard::message`], [`Guard::login_attempt`], [`Guard::auth_failed`] and
//! [`Guard::auth_succeeded`],
//! which decide. The guard still counts on its own as well, and decides by the larger count:
//! when the store cannot answer, its own counts are the floor (a node never counts less than it
//! did alone), except for sending, which is then refused (see [`crate::SendingLimit::Uncounted`]).

use std::time::{Duration, UNIX_EPOCH};

use crate::{Guard, Now};

/// The width of a bucket.
const BUCKET_SECONDS: i64 = 60;

/// The sending window.
const HOUR_SECONDS: i64 = 3600;

/// Where the facts of one moment are counted, and where the windows they are counted over
/// start: the starts of minutes, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// The bucket of now: the start of this minute.
    pub minute: i64,
    /// The first bucket of the sending window: a minute's messages count until the whole
    /// minute is an hour old, so a limit is never lifted early, and at most a minute late.
    pub sent_since: i64,
    /// The first bucket of the failure (and attempt) window (`guard.ban_window`): the one
    /// holding the window's start, so a failure counts up to a minute longer than the window, never less.
    pub failures_since: i64,
    /// Buckets before this one are in no window: the store may forget them (an account's
    /// failures since its last success are kept as long).
    pub forget_before: i64,
}

/// Login attempts from unknown addresses within `guard.ban_window`, all nodes together, the
/// one being decided included (as the store's `add_auth_attempt` counts them in the buckets
/// from [`Buckets::failures_since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// The source's attempts (for `guard.ban_after_attempts`).
    pub source: u32,
    /// The account's attempts (for `guard.unknown_source_attempts`).
    pub account: u32,
}

/// What an account sent within the hour, all nodes together, before the message being decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub messages: u32,
    pub recipients: u32,
}

impl Guard {
    /// The buckets for `now` under the current policy.
    pub fn buckets(&self, now: Now) -> Buckets {
        buckets(now, self.policy().settings.ban_window)
    }
}

fn buckets(now: Now, ban_window: Duration) -> Buckets {
    let seconds = now.wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).min(i64::MAX as u64) as i64;
    let start = |t: i64| t - t.rem_euclid(BUCKET_SECONDS);
    let window = ban_window.as_secs().min(i64::MAX as u64 / 2) as i64;
    let minute = start(seconds);
    let sent_since = minute - HOUR_SECONDS;
    let failures_since = start(seconds.saturating_sub(window));
    Buckets { minute, sent_since, failures_since, forget_before: sent_since.min(failures_since) }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;

    fn at(seconds: u64) -> Now {
        Now { mono: Instant::now(), wall: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) }
    }

    #[test]
    fn windows_start_at_a_whole_minute_and_never_end_early() {
        let b = buckets(at(100_000_030), Duration::from_secs(600));
        assert_eq!(b.minute, 100_000_020, "the start of the minute");
        // 61 buckets: this one and the sixty before it; the oldest ended 59:50 ago.
        assert_eq!(b.sent_since, 100_000_020 - 3600);
        // The window's start, 99_999_430, lies in the bucket from 99_999_420.
        assert_eq!(b.failures_since, 99_999_420);
        assert_eq!(b.forget_before, b.sent_since);
        let long = buckets(at(100_000_030), Duration::from_secs(7200));
        assert_eq!(long.forget_before, long.failures_since, "a failure window longer than the hour");
    }
}
