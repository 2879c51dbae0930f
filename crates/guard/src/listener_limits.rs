//! Limits of one listener of its own, beyond the server-wide ones (`[limits]`): connections
//! open at once on it, from everyone and from one source, and per-minute rates per source of
//! new connections, messages and recipients. Port 25 has them (`[smtp]`): other servers
//! deliver there without logging in, so what they may do is bounded per source instead of per
//! account. Trusted networks are not limited.
//!
//! A rate is a sliding window of one minute, estimated from two fixed windows (this minute's
//! count, and the last minute's weighted by how much of it still overlaps the window), so that
//! each source costs three numbers whatever its limit; a window per event would hold up to
//! the limit's worth of instants for every source the guard tracks.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use portcullis_events::Listener;

use crate::source::{canonical, Source};
use crate::{Guard, Now};

/// What one listener allows beyond the server-wide limits; 0 for a rate means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub connections_per_minute: u32,
    pub messages_per_minute: u32,
    pub recipients_per_minute: u32,
}

impl ListenerLimits {
    /// Port 25's, from `[smtp]`.
    pub fn from_smtp(smtp: &portcullis_config::Smtp) -> ListenerLimits {
        ListenerLimits {
            max_connections: smtp.max_connections,
            max_connections_per_source: smtp.max_connections_per_ip,
            connections_per_minute: smtp.connections_per_minute,
            messages_per_minute: smtp.messages_per_minute,
            recipients_per_minute: smtp.recipients_per_minute,
        }
    }
}

/// What a per-minute rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    Connections,
    Messages,
    Recipients,
}

impl Rate {
    pub fn as_str(self) -> &'static str {
        match self {
            Rate::Connections => "connections_per_minute",
            Rate::Messages => "messages_per_minute",
            Rate::Recipients => "recipients_per_minute",
        }
    }

    fn limit(self, limits: &ListenerLimits) -> u32 {
        match self {
            Rate::Connections => limits.connections_per_minute,
            Rate::Messages => limits.messages_per_minute,
            Rate::Recipients => limits.recipients_per_minute,
        }
    }
}

/// A source went over a per-minute rate: this one, at this limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHit {
    pub rate: Rate,
    pub limit: u32,
}

const MINUTE: Duration = Duration::from_secs(60);

/// One source's count of one thing over the last minute (see the module comment).
#[derive(Debug, Clone)]
pub(crate) struct MinuteRate {
    /// Start of the current fixed window.
    start: Instant,
    current: u32,
    previous: u32,
}

impl MinuteRate {
    fn new(now: Instant) -> MinuteRate {
        MinuteRate { start: now, current: 0, previous: 0 }
    }

    /// Moves the windows up to `now`.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= 2 * MINUTE {
            *self = MinuteRate::new(now);
        } else if elapsed >= MINUTE {
            self.previous = self.current;
            self.current = 0;
            self.start += MINUTE;
        }
    }

    /// Events within the minute before `now`, estimated.
    fn count(&self, now: Instant) -> f64 {
        let into = now.saturating_duration_since(self.start).as_secs_f64() / MINUTE.as_secs_f64();
        f64::from(self.previous) * (1.0 - into.min(1.0)) + f64::from(self.current)
    }

    /// Counts `n` more if that stays within `limit`; whether it did.
    pub(crate) fn try_add(&mut self, now: Instant, n: u32, limit: u32) -> bool {
        self.roll(now);
        if self.count(now) + f64::from(n) > f64::from(limit) {
            return false;
        }
        self.current = self.current.saturating_add(n);
        true
    }
}

impl Guard {
    /// Counts one more of `rate` from `ip` on `listener`; `Err` when that is over the
    /// listener's per-minute limit (and then it does not count). Unlimited listeners, rates
    /// set to 0 and trusted networks always pass.
    pub fn rate(&self, listener: Listener, rate: Rate, ip: IpAddr, n: u32, now: Now) -> Result<(), RateHit> {
        let ip = canonical(ip);
        let policy = self.policy();
        let Some(limits) = policy.limits_of(listener) else { return Ok(()) };
        let limit = rate.limit(limits);
        if limit == 0 || policy.rules.is_trusted(ip) {
            return Ok(());
        }
        let Ok(mut rates) = self.inner.rates.lock() else { return Ok(()) };
        let key = (listener, Source::of(ip), rate);
        if rates.touch(&key, now.mono, || MinuteRate::new(now.mono)).try_add(now.mono, n, limit) {
            Ok(())
        } else {
            Err(RateHit { rate, limit })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliding_minute_lets_the_limit_through_and_no_more() {
        let start = Instant::now();
        let mut r = MinuteRate::new(start);
        assert!((0..10).all(|_| r.try_add(start, 1, 10)));
        assert!(!r.try_add(start + Duration::from_secs(30), 1, 10), "still within the minute");
        // Half a minute into the next window, half of the last one still counts: 5 more fit.
        let later = start + Duration::from_secs(90);
        assert_eq!((0..10).filter(|_| r.try_add(later, 1, 10)).count(), 5);
        // Two quiet minutes forget everything.
        assert!((0..10).all(|_| r.try_add(start + Duration::from_secs(300), 1, 10)));
    }
}
