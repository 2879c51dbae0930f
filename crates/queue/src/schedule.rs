//! When to try a deferred message again, when to tell its sender it is late, and when to
//! give up: exponential backoff from a first interval, capped, until the message's lifetime
//! ends (RFC 5321 §4.5.4.1: retry at least 30 minutes apart, give up after 4-5 days).
//! Wall-clock times, since they outlive the process in the queue's storage.

use std::time::{Duration, SystemTime};

/// The retry policy (config `[queue]`: `retry_first`, `retry_max_interval`, `expire`,
/// `delay_notice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the first failed attempt; each later wait doubles.
    pub first_retry: Duration,
    /// No wait is longer than this.
    pub max_interval: Duration,
    /// How long after it was queued a message is given up (and bounced).
    pub expire_after: Duration,
    /// When the sender is told the message is still waiting (`None`: never).
    pub delay_notice_after: Option<Duration>,
}

/// What to do with a message whose attempt failed temporarily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    RetryAt(SystemTime),
    /// Its lifetime is over: a failure notice, and out of the queue.
    GiveUp,
}

impl Default for RetrySchedule {
    /// 5 minutes, doubling up to 4 hours, for 5 days; a delay notice after 4 hours.
    fn default() -> Self {
        RetrySchedule {
            first_retry: Duration::from_secs(5 * 60),
            max_interval: Duration::from_secs(4 * 3600),
            expire_after: Duration::from_secs(5 * 24 * 3600),
            delay_notice_after: Some(Duration::from_secs(4 * 3600)),
        }
    }
}

impl RetrySchedule {
    /// The config crate calls this; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.first_retry.is_zero() {
            return Err("the first retry interval must be longer than zero".into());
        }
        if self.max_interval < self.first_retry {
            return Err("the longest retry interval must not be shorter than the first".into());
        }
        if self.expire_after < self.first_retry {
            return Err("the queue lifetime must be longer than the first retry interval".into());
        }
        if self.delay_notice_after.is_some_and(|d| d >= self.expire_after) {
            return Err("the delay notice must come before the queue lifetime ends".into());
        }
        Ok(())
    }

    /// The wait after `failed_attempts` failures (1 = after the first).
    pub fn interval(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(32);
        self.first_retry.saturating_mul(1u32 << doublings.min(31)).min(self.max_interval)
    }

    /// When the message is given up.
    pub fn expires_at(&self, queued_at: SystemTime) -> SystemTime {
        queued_at + self.expire_after
    }

    /// After the `failed_attempts`-th temporary failure at `now`: the next attempt, one last
    /// attempt at the expiry time if the next would come later, or the end.
    pub fn after_temporary_failure(&self, queued_at: SystemTime, failed_attempts: u32, now: SystemTime) -> NextStep {
        let expires = self.expires_at(queued_at);
        if now >= expires {
            return NextStep::GiveUp;
        }
        let next = now + self.interval(failed_attempts);
        NextStep::RetryAt(next.min(expires))
    }

    /// Whether a delay notice is due now (once per message: the caller records that it sent
    /// one).
    pub fn delay_notice_due(&self, queued_at: SystemTime, now: SystemTime, already_sent: bool) -> bool {
        match self.delay_notice_after {
            Some(after) if !already_sent => now >= queued_at + after && now < self.expires_at(queued_at),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn waits_double_from_the_first_and_stop_at_the_cap() {
        let s = RetrySchedule::default();
        let waits: Vec<u64> = (1..=9).map(|n| s.interval(n).as_secs() / 60).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 240, 240, 240]);
        assert_eq!(s.interval(u32::MAX), s.max_interval, "no overflow");
        s.validate().unwrap();
    }

    #[test]
    fn the_default_gives_up_after_about_five_days_with_a_last_try_at_the_end() {
        let s = RetrySchedule::default();
        let queued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (mut now, mut failures) = (queued, 0);
        loop {
            failures += 1;
            match s.after_temporary_failure(queued, failures, now) {
                NextStep::RetryAt(at) => {
                    assert!(at > now && at <= s.expires_at(queued));
                    now = at;
                }
                NextStep::GiveUp => break,
            }
        }
        assert_eq!(now, queued + Duration::from_secs(5 * 24 * 3600), "the last attempt is at the expiry");
        assert!((28..40).contains(&failures), "{failures} attempts in 5 days");
    }

    #[test]
    fn one_delay_notice_after_its_time_and_none_once_expired() {
        let s = RetrySchedule::default();
        let q = SystemTime::UNIX_EPOCH;
        assert!(!s.delay_notice_due(q, q + 239 * MIN, false));
        assert!(s.delay_notice_due(q, q + 240 * MIN, false));
        assert!(!s.delay_notice_due(q, q + 240 * MIN, true));
        assert!(!s.delay_notice_due(q, q + s.expire_after, false));
        let never = RetrySchedule { delay_notice_after: None, ..s };
        assert!(!never.delay_notice_due(q, q + 1000 * MIN, false));
    }

    #[test]
    fn inconsistent_schedules_are_refused() {
        let s = RetrySchedule::default();
        assert!(RetrySchedule { first_retry: Duration::ZERO, ..s }.validate().is_err());
        assert!(RetrySchedule { max_interval: MIN, ..s }.validate().is_err());
        assert!(RetrySchedule { delay_notice_after: Some(s.expire_after), ..s }.validate().is_err());
    }
}
