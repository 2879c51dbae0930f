//! The last hour of connection attempts and failed logins per listener, in the anomaly
//! detector's buckets, with the baseline the detector held when each bucket began: what the
//! dashboard charts. A fixed ring: at most [`MAX_POINTS`] buckets, whatever the traffic.

use std::collections::VecDeque;

use portcullis_events::Listener;
use serde::Serialize;

/// Buckets kept: one hour at the default 10 s bucket is 360; a 1 s bucket keeps an hour too.
pub const MAX_POINTS: usize = 3600;
const HOUR_MS: u64 = 3_600_000;

/// What a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    ConnectionAttempts = 0,
    AuthFailures = 1,
}

const MEASURES: [Measure; 2] = [Measure::ConnectionAttempts, Measure::AuthFailures];

/// Mail listeners charted; each slot has one row per listener.
const LISTENERS: usize = Listener::ALL.len();

/// The listener's row, for a mail listener (the admin listener is not charted).
fn index(listener: Listener) -> Option<usize> {
    listener.is_mail().then(|| listener.index())
}

/// (mean, standard deviation) per bucket.
pub type Baseline = Option<(f64, f64)>;

#[derive(Clone, Default)]
struct Slot {
    counts: [[u32; 2]; LISTENERS],
    baseline: [[Option<(f32, f32)>; 2]; LISTENERS],
}

pub struct Series {
    bucket_ms: u64,
    capacity: usize,
    /// Bucket number (ms since the epoch / bucket_ms) of the newest slot.
    newest: u64,
    slots: VecDeque<Slot>,
}

#[derive(Debug, Serialize)]
pub struct Line {
    pub measure: &'static str,
    pub listener: Listener,
    pub counts: Vec<u32>,
    /// The detector's baseline mean per bucket (null before it has learned anything).
    pub mean: Vec<Option<f32>>,
    pub sd: Vec<Option<f32>>,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub bucket_ms: u64,
    /// Start of the first bucket, ms since the epoch.
    pub start_ms: u64,
    pub points: usize,
    pub lines: Vec<Line>,
}

impl Series {
    pub fn new(bucket_ms: u64, now_ms: u64) -> Series {
        let bucket_ms = bucket_ms.max(1);
        let capacity = (HOUR_MS.div_ceil(bucket_ms) as usize).clamp(1, MAX_POINTS);
        let mut slots = VecDeque::with_capacity(capacity);
        slots.push_back(Slot::default());
        Series { bucket_ms, capacity, newest: now_ms / bucket_ms, slots }
    }

    /// Moves the newest bucket up to `now_ms`; new buckets start with the baseline `baseline`
    /// gives for each (measure, listener).
    pub fn advance(&mut self, now_ms: u64, baseline: &dyn Fn(Measure, Listener) -> Baseline) {
        let target = now_ms / self.bucket_ms;
        if target <= self.newest {
            return;
        }
        let mut fresh = Slot::default();
        for (l, &listener) in Listener::ALL.iter().enumerate() {
            for m in MEASURES {
                fresh.baseline[l][m as usize] = baseline(m, listener).map(|(mean, sd)| (mean as f32, sd as f32));
            }
        }
        let gap = (target - self.newest).min(self.capacity as u64);
        for _ in 0..gap {
            if self.slots.len() == self.capacity {
                self.slots.pop_front();
            }
            self.slots.push_back(fresh.clone());
        }
        self.newest = target;
    }

    /// Counts one event in the newest bucket (call `advance` first).
    pub fn count(&mut self, measure: Measure, listener: Listener) {
        if let (Some(slot), Some(l)) = (self.slots.back_mut(), index(listener)) {
            let n = &mut slot.counts[l][measure as usize];
            *n = n.saturating_add(1);
        }
    }

    /// The whole ring, oldest bucket first, for the listeners asked for.
    pub fn snapshot(&self, listeners: &[Listener]) -> Snapshot {
        let points = self.slots.len();
        let start_ms = (self.newest + 1 - points as u64) * self.bucket_ms;
        let mut lines = Vec::new();
        for (&listener, l) in listeners.iter().filter_map(|l| Some((l, index(*l)?))) {
            for m in MEASURES {
                let m = m as usize;
                lines.push(Line {
                    measure: if m == 0 { "connection_attempts" } else { "auth_failures" },
                    listener,
                    counts: self.slots.iter().map(|s| s.counts[l][m]).collect(),
                    mean: self.slots.iter().map(|s| s.baseline[l][m].map(|b| b.0)).collect(),
                    sd: self.slots.iter().map(|s| s.baseline[l][m].map(|b| b.1)).collect(),
                });
            }
        }
        Snapshot { bucket_ms: self.bucket_ms, start_ms, points, lines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_bucket_and_the_ring_is_bounded() {
        let none = |_: Measure, _: Listener| None;
        let mut s = Series::new(10_000, 1_000_000);
        s.count(Measure::ConnectionAttempts, Listener::Imaps);
        s.advance(1_005_000, &none);
        s.count(Measure::ConnectionAttempts, Listener::Imaps);
        s.advance(1_010_000, &|m, l| (m == Measure::AuthFailures && l == Listener::Pop3s).then_some((2.0, 1.5)));
        s.count(Measure::AuthFailures, Listener::Pop3s);
        let snap = s.snapshot(&[Listener::Imaps, Listener::Pop3s]);
        assert_eq!((snap.points, snap.bucket_ms, snap.start_ms), (2, 10_000, 1_000_000));
        assert_eq!(snap.lines[0].counts, vec![2, 0]);
        assert_eq!(snap.lines[3].listener, Listener::Pop3s);
        assert_eq!(snap.lines[3].counts, vec![0, 1]);
        assert_eq!(snap.lines[3].mean, vec![None, Some(2.0)]);
        // Two hours later: the ring holds one hour, not more.
        s.advance(1_010_000 + 2 * HOUR_MS, &none);
        let snap = s.snapshot(&[Listener::Imaps]);
        assert_eq!(snap.points, 360);
        assert!(snap.lines[0].counts.iter().all(|&c| c == 0));
    }
}
