//! Per-destination limits for the queue runner: at most so many connections at once to one
//! destination, at most so many started per interval, and a pause for a destination that
//! just failed at the connection level (a greylisting or overloaded domain waits alone; the
//! rest of the queue goes on). Pure: the caller passes the monotonic time, and the limiter
//! answers when a destination may be tried, never sleeps.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The limits of one destination (config `[queue]`: `destination_connections`,
/// `destination_connections_per_minute`, `destination_backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationLimits {
    /// Connections open at once.
    pub concurrency: usize,
    /// Connections started per `per`; `None`: no rate limit.
    pub rate: Option<(u32, Duration)>,
    /// The pause after a connection-level failure (refused, no answer, 421).
    pub backoff: Duration,
}

impl Default for DestinationLimits {
    /// 5 at once, 60 a minute, a minute's pause after a failure.
    fn default() -> Self {
        DestinationLimits {
            concurrency: 5,
            rate: Some((60, Duration::from_secs(60))),
            backoff: Duration::from_secs(60),
        }
    }
}

/// The answer to "may I start a connection to this destination now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes: the slot is taken; call [`Limiter::finish`] when the connection ends.
    Go,
    /// All its slots are taken: try again when one is freed.
    Busy,
    /// Not before this time (rate limit or backoff).
    NotBefore(Instant),
}

#[derive(Debug, Default)]
struct Destination {
    active: usize,
    started: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// The limiter, keyed by destination (a domain, or a smart host's name).
#[derive(Debug)]
pub struct Limiter<K> {
    limits: DestinationLimits,
    destinations: HashMap<K, Destination>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(limits: DestinationLimits) -> Limiter<K> {
        Limiter { limits, destinations: HashMap::new() }
    }

    pub fn try_start(&mut self, destination: &K, now: Instant) -> Admission {
        let limits = self.limits;
        let d = self.destinations.entry(destination.clone()).or_default();
        if let Some(until) = d.paused_until {
            if now < until {
                return Admission::NotBefore(until);
            }
            d.paused_until = None;
        }
        if d.active >= limits.concurrency.max(1) {
            return Admission::Busy;
        }
        if let Some((count, per)) = limits.rate {
            while d.started.front().is_some_and(|&t| now.duration_since(t) >= per) {
                d.started.pop_front();
            }
            if d.started.len() >= count.max(1) as usize {
                if let Some(&oldest) = d.started.front() {
                    return Admission::NotBefore(oldest + per);
                }
            }
            d.started.push_back(now);
        }
        d.active += 1;
        Admission::Go
    }

    /// A connection started with [`Admission::Go`] ended; `failed`: at the connection level,
    /// so the destination pauses.
    pub fn finish(&mut self, destination: &K, failed: bool, now: Instant) {
        let backoff = self.limits.backoff;
        if let Some(d) = self.destinations.get_mut(destination) {
            d.active = d.active.saturating_sub(1);
            if failed && !backoff.is_zero() {
                d.paused_until = Some(now + backoff);
            }
        }
        self.forget_idle(now);
    }

    /// Connections open to this destination.
    pub fn active(&self, destination: &K) -> usize {
        self.destinations.get(destination).map_or(0, |d| d.active)
    }

    /// Destinations remembered (bounded: idle ones are forgotten).
    pub fn len(&self) -> usize {
        self.destinations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// Forgets destinations with nothing open, no pause and no start inside the rate window.
    fn forget_idle(&mut self, now: Instant) {
        let per = self.limits.rate.map_or(Duration::ZERO, |(_, per)| per);
        self.destinations.retain(|_, d| {
            d.active > 0
                || d.paused_until.is_some_and(|until| until > now)
                || d.started.back().is_some_and(|&t| now.duration_since(t) < per)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, rate: Option<(u32, u64)>) -> DestinationLimits {
        DestinationLimits {
            concurrency,
            rate: rate.map(|(n, s)| (n, Duration::from_secs(s))),
            backoff: Duration::from_secs(30),
        }
    }

    #[test]
    fn concurrency_is_per_destination() {
        let mut l = Limiter::new(limits(2, None));
        let t = Instant::now();
        assert_eq!(l.try_start(&"slow.example", t), Admission::Go);
        assert_eq!(l.try_start(&"slow.example", t), Admission::Go);
        assert_eq!(l.try_start(&"slow.example", t), Admission::Busy);
        // One slow destination holds back no other.
        assert_eq!(l.try_start(&"fast.example", t), Admission::Go);
        l.finish(&"slow.example", false, t);
        assert_eq!(l.try_start(&"slow.example", t), Admission::Go);
    }

    #[test]
    fn the_rate_window_says_when_the_next_start_may_come() {
        let mut l = Limiter::new(limits(10, Some((2, 60))));
        let t = Instant::now();
        assert_eq!(l.try_start(&"d", t), Admission::Go);
        assert_eq!(l.try_start(&"d", t + Duration::from_secs(10)), Admission::Go);
        assert_eq!(l.try_start(&"d", t + Duration::from_secs(20)), Admission::NotBefore(t + Duration::from_secs(60)));
        assert_eq!(l.try_start(&"d", t + Duration::from_secs(60)), Admission::Go);
    }

    #[test]
    fn a_failed_connection_pauses_only_its_destination() {
        let mut l = Limiter::new(limits(10, None));
        let t = Instant::now();
        assert_eq!(l.try_start(&"grey", t), Admission::Go);
        l.finish(&"grey", true, t);
        assert_eq!(l.try_start(&"grey", t + Duration::from_secs(1)), Admission::NotBefore(t + Duration::from_secs(30)));
        assert_eq!(l.try_start(&"other", t), Admission::Go);
        assert_eq!(l.try_start(&"grey", t + Duration::from_secs(30)), Admission::Go);
    }

    #[test]
    fn idle_destinations_are_forgotten() {
        let mut l = Limiter::new(limits(10, Some((5, 60))));
        let t = Instant::now();
        for i in 0..1000 {
            let name = format!("d{i}.example");
            assert_eq!(l.try_start(&name, t), Admission::Go);
            l.finish(&name, false, t + Duration::from_secs(120));
        }
        assert!(l.is_empty(), "{} remembered", l.len());
    }
}
