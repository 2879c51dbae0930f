//! Anomaly detection on event rates (docs/architecture.md §1, "attacks nobody noticed").
//!
//! For each series (a metric, per listener or overall) events are counted in fixed buckets. When a
//! bucket closes, its count is compared with a learned baseline: an exponentially weighted mean and
//! variance of past bucket counts. A count above both `mean + k * stddev` and an absolute floor
//! starts an *episode* and yields one [`Anomaly`]; the episode lasts until `calm_buckets`
//! consecutive buckets are back under the threshold, and while it lasts the baseline is frozen (an
//! attack must not teach the detector that attacks are normal) and nothing more is reported.
//!
//! Pure code: no I/O, no threads, no clock. The caller passes `now` and calls [`Detector::tick`]
//! at least once per bucket (more often is fine), so alerts come at most one bucket plus one tick
//! interval after the spike started.
//!
//! Formulas (per closed bucket with count `x`, `n` = buckets learned so far):
//! - `alpha = 1 - 0.5^(bucket / half_life)`: after one half-life, old buckets weigh half.
//! - while `1/(n+1) >= alpha` the weight is `1/(n+1)` instead, which makes the baseline the plain
//!   average (and population variance) of all buckets so far: it settles fast after start instead
//!   of creeping up from zero, then turns smoothly into the EWMA.
//! - `delta = x - mean; mean += a*delta; var = (1-a) * (var + a*delta^2)`.
//! - `stddev = sqrt(max(var, mean))`: counts are at least Poisson-noisy (variance = mean), so a
//!   perfectly regular baseline (health checks, 100 every bucket) does not alert on one extra.
//! - `threshold = max(mean + k*stddev, floor)`; a bucket is anomalous when `x > threshold`.

use std::time::{Duration, Instant};

use portcullis_events::Listener;

/// Buckets shorter than this are treated as this long (a zero bucket would divide by zero).
const MIN_BUCKET: Duration = Duration::from_millis(1);
/// The set of series is small by construction (metrics x listeners); this only guards memory if
/// a caller misbehaves. Events of further series are ignored.
const MAX_SERIES: usize = 256;
/// Anomalies waiting for `tick` (they can only pile up if `record` is called and `tick` never is).
const MAX_PENDING: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    ConnectionAttempts,
    AuthFailures,
    RefusedConnections,
    Bans,
}

/// What a series counts: a metric for one listener, or overall (None).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Series {
    pub metric: Metric,
    pub listener: Option<Listener>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of one counting bucket (default 10 s; tests use 1 s). At least 1 ms is used.
    pub bucket: Duration,
    /// Half-life of the baseline's memory: how fast the learned mean and variance follow the
    /// traffic (default 1 h). Zero means "remember only the last bucket".
    pub half_life: Duration,
    /// An alert needs the bucket's count above mean + k * standard deviation (default 4.0)...
    /// (NaN means the default, negative means 0.)
    pub k: f64,
    /// ...and above this absolute count per bucket (default 20), so quiet servers don't alert on
    /// noise. (NaN means the default, negative means 0.)
    pub floor: f64,
    /// Buckets of history needed before a series may alert (default 6).
    pub warmup_buckets: u32,
    /// Consecutive normal buckets that end an episode (default 3; 0 is treated as 1).
    pub calm_buckets: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            bucket: Duration::from_secs(10),
            half_life: Duration::from_secs(3600),
            k: 4.0,
            floor: 20.0,
            warmup_buckets: 6,
            calm_buckets: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub series: Series,
    /// Events counted in the bucket that crossed the threshold.
    pub observed: f64,
    pub mean: f64,
    /// The deviation used for the threshold (learned, but at least sqrt(mean), see module docs).
    pub stddev: f64,
    /// The threshold that was crossed: max(mean + k*stddev, floor).
    pub threshold: f64,
}

/// Settings made safe to compute with, plus what derives from them.
#[derive(Debug, Clone)]
struct Params {
    k: f64,
    floor: f64,
    warmup: u64,
    calm: u32,
    /// EWMA weight of one bucket, from the half-life.
    alpha: f64,
    /// Number of first buckets learned as a plain average (those with 1/(n+1) >= alpha).
    plain_len: u64,
}

impl Params {
    fn new(s: &Settings, bucket: Duration) -> Params {
        let defaults = Settings::default();
        let alpha = if s.half_life.is_zero() {
            1.0
        } else {
            // bucket >= 1 ms and half_life > 0, so the ratio is finite and non-negative; alpha is
            // in [0, 1]. A huge half-life gives alpha = 0 (never forget), which is consistent.
            1.0 - 0.5f64.powf(bucket.as_secs_f64() / s.half_life.as_secs_f64())
        };
        // Float-to-int casts saturate: 1/0 = inf becomes u64::MAX (plain average forever).
        let plain_len = ((1.0 / alpha).floor() as u64).max(1);
        let sane = |v: f64, default: f64| if v.is_nan() { default } else { v.max(0.0) };
        Params {
            // k is clamped finite so that k * 0 is never inf * 0 = NaN.
            k: sane(s.k, defaults.k).min(1e12),
            floor: sane(s.floor, defaults.floor),
            warmup: u64::from(s.warmup_buckets),
            calm: s.calm_buckets.max(1),
            alpha,
            plain_len,
        }
    }
}

/// The state of one series.
#[derive(Debug, Clone)]
struct State {
    series: Series,
    /// Events in the open bucket.
    count: u64,
    mean: f64,
    var: f64,
    /// Buckets folded into mean and var (zero buckets before the first event included).
    learned: u64,
    in_episode: bool,
    /// Consecutive normal buckets seen in the current episode.
    calm: u32,
}

impl State {
    fn stddev(&self) -> f64 {
        // max() also maps a NaN (which cannot arise, but costs nothing to exclude) to a number.
        self.var.max(self.mean).max(0.0).sqrt()
    }

    fn threshold(&self, p: &Params) -> f64 {
        (self.mean + p.k * self.stddev()).max(p.floor)
    }

    /// Folds one bucket into the baseline.
    fn learn(&mut self, x: f64, p: &Params) {
        let a = if self.learned < p.plain_len { 1.0 / (self.learned as f64 + 1.0) } else { p.alpha };
        let delta = x - self.mean;
        self.mean += a * delta;
        self.var = (1.0 - a) * (self.var + a * delta * delta);
        self.learned = self.learned.saturating_add(1);
    }

    /// Closes one bucket with count `x`; returns the anomaly if an episode starts with it.
    fn close(&mut self, x: f64, p: &Params) -> Option<Anomaly> {
        let threshold = self.threshold(p);
        if self.in_episode {
            // Frozen baseline: only watch for the return to normal.
            if x > threshold {
                self.calm = 0;
            } else {
                self.note_calm(1, p);
            }
            return None;
        }
        if self.learned >= p.warmup && x > threshold {
            self.in_episode = true;
            self.calm = 0;
            return Some(Anomaly {
                series: self.series.clone(),
                observed: x,
                mean: self.mean,
                stddev: self.stddev(),
                threshold,
            });
        }
        self.learn(x, p);
        None
    }

    /// Counts `m` normal buckets towards the end of an episode; returns how many were used.
    fn note_calm(&mut self, m: u64, p: &Params) -> u64 {
        let used = m.min(u64::from(p.calm - self.calm));
        self.calm += used as u32; // used <= p.calm - calm, so this fits
        if self.calm >= p.calm {
            self.in_episode = false;
            self.calm = 0;
        }
        used
    }

    /// Closes `m` buckets without events in O(1), however large `m` is: this is what caps the
    /// catch-up work after a long pause. A zero count is never anomalous (the threshold is >= 0
    /// and the test is strict), so only the episode's calm count and the baseline change.
    fn close_empty(&mut self, mut m: u64, p: &Params) {
        if self.in_episode {
            m -= self.note_calm(m, p);
            if self.in_episode {
                return;
            }
        }
        // Buckets still in the plain-average phase: append m zeros to an average of n samples.
        let plain = m.min(p.plain_len.saturating_sub(self.learned));
        if plain > 0 {
            let n = self.learned as f64;
            let total = n + plain as f64;
            let mean_sq = self.var + self.mean * self.mean; // average of x^2 so far
            let mean = self.mean * n / total;
            self.var = (mean_sq * n / total - mean * mean).max(0.0);
            self.mean = mean;
            self.learned = self.learned.saturating_add(plain);
            m -= plain;
        }
        // The rest with the EWMA. With x = 0 and b = 1 - alpha, m steps of the update give
        // mean_m = b^m mean and var_m = b^m (var + mean^2 (1 - b^m)) (by induction on m).
        if m > 0 {
            let bm = (1.0 - p.alpha).powf(m as f64);
            self.var = bm * (self.var + self.mean * self.mean * (1.0 - bm));
            self.mean *= bm;
            self.learned = self.learned.saturating_add(m);
        }
    }
}

/// Rate anomaly detector over a small set of series. See the module docs.
#[derive(Debug)]
pub struct Detector {
    params: Params,
    bucket: Duration,
    start: Instant,
    /// Index of the open bucket: it covers [start + open*bucket, start + (open+1)*bucket).
    open: u64,
    /// A Vec rather than a map: few series, and a stable order makes output deterministic.
    series: Vec<State>,
    /// Anomalies found while `record` closed buckets, handed out by the next `tick`.
    pending: Vec<Anomaly>,
}

impl Detector {
    pub fn new(settings: Settings, now: Instant) -> Detector {
        let bucket = settings.bucket.max(MIN_BUCKET);
        Detector {
            params: Params::new(&settings, bucket),
            bucket,
            start: now,
            open: 0,
            series: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Counts one event (several for `n`) at `now`.
    ///
    /// Buckets that ended by `now` are closed first, so the events land in the bucket of `now`
    /// even if `tick` is late; anomalies found doing so are returned by the next `tick`. A `now`
    /// earlier than the open bucket (a stale timestamp) counts in the open bucket.
    pub fn record(&mut self, series: &Series, n: u64, now: Instant) {
        self.advance(now);
        let i = match self.series.iter().position(|s| s.series == *series) {
            Some(i) => i,
            None if self.series.len() < MAX_SERIES => {
                // A new series has seen zero events in every bucket since the detector started:
                // its history is `open` empty buckets, i.e. mean 0 and variance 0 (a plain or
                // weighted average of zeros), already warm if the detector is.
                self.series.push(State {
                    series: series.clone(),
                    count: 0,
                    mean: 0.0,
                    var: 0.0,
                    learned: self.open,
                    in_episode: false,
                    calm: 0,
                });
                self.series.len() - 1
            }
            None => return,
        };
        let s = &mut self.series[i];
        s.count = s.count.saturating_add(n);
    }

    /// Closes every bucket that ended by `now` (buckets with no events count as zero; a long
    /// pause costs O(series), not O(buckets)), updates baselines, and returns the anomalies whose
    /// episode STARTS with a closed bucket. An episode lasts until `calm_buckets` consecutive
    /// buckets are back under the threshold; during an episode the baseline is not updated and no
    /// further anomaly is returned for that series.
    pub fn tick(&mut self, now: Instant) -> Vec<Anomaly> {
        self.advance(now);
        std::mem::take(&mut self.pending)
    }

    /// The current baseline of a series: (mean, stddev) per bucket, for dashboards. The stddev is
    /// the one thresholds use (at least sqrt(mean)). None for a series never recorded or before
    /// its first bucket closed.
    pub fn baseline(&self, series: &Series) -> Option<(f64, f64)> {
        self.state(series).filter(|s| s.learned > 0).map(|s| (s.mean, s.stddev()))
    }

    /// Whether a series is in an anomaly episode now.
    pub fn in_episode(&self, series: &Series) -> bool {
        self.state(series).is_some_and(|s| s.in_episode)
    }

    fn state(&self, series: &Series) -> Option<&State> {
        self.series.iter().find(|s| s.series == *series)
    }

    /// Index of the bucket that contains `now` (0 for times before the start).
    fn bucket_index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(elapsed / self.bucket.as_nanos()).unwrap_or(u64::MAX)
    }

    fn advance(&mut self, now: Instant) {
        let target = self.bucket_index(now);
        if target <= self.open {
            return;
        }
        // Only the open bucket can hold events (record advances before counting); every bucket
        // after it up to `target` is empty.
        let empty = target - self.open - 1;
        for s in &mut self.series {
            let x = std::mem::take(&mut s.count) as f64;
            if let Some(a) = s.close(x, &self.params) {
                if self.pending.len() < MAX_PENDING {
                    self.pending.push(a);
                }
            }
            s.close_empty(empty, &self.params);
        }
        self.open = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAPS: Series = Series { metric: Metric::ConnectionAttempts, listener: Some(Listener::Imaps) };
    const POP3S: Series = Series { metric: Metric::ConnectionAttempts, listener: Some(Listener::Pop3s) };
    const ALL: Series = Series { metric: Metric::ConnectionAttempts, listener: None };

    fn test_settings() -> Settings {
        Settings { bucket: Duration::from_secs(1), half_life: Duration::from_secs(60), ..Settings::default() }
    }

    /// Drives a detector bucket by bucket: events in the middle of a bucket, a tick in the middle
    /// too (which must find nothing new), and a tick right at its end.
    struct Harness {
        det: Detector,
        base: Instant,
        bucket: Duration,
        next: u32,
    }

    impl Harness {
        fn new(settings: Settings) -> Harness {
            let base = Instant::now();
            let bucket = settings.bucket;
            Harness { det: Detector::new(settings, base), base, bucket, next: 0 }
        }

        /// One bucket with these events; returns what the tick at its end reports.
        fn step(&mut self, events: &[(&Series, u64)]) -> Vec<Anomaly> {
            let start = self.base + self.bucket * self.next;
            for (series, n) in events {
                self.det.record(series, *n, start + self.bucket / 3);
            }
            assert!(self.det.tick(start + self.bucket / 2).is_empty(), "open bucket reported");
            self.next += 1;
            self.det.tick(self.base + self.bucket * self.next)
        }

        /// Quiet buckets of 2..=5 events (deterministic jitter) on one series; none may alert.
        fn quiet(&mut self, series: &Series, buckets: u32) {
            for i in 0..buckets {
                let n = 2 + u64::from(i * 7 % 4);
                assert!(self.step(&[(series, n)]).is_empty(), "quiet bucket {i} alerted");
            }
        }
    }

    #[test]
    fn spike_after_quiet_baseline_alerts_once() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 30);
        let found = h.step(&[(&IMAPS, 200)]);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(a.series, IMAPS);
        assert_eq!(a.observed, 200.0);
        assert!((2.0..=5.0).contains(&a.mean), "{a:?}");
        assert!(a.stddev > 0.0 && a.stddev < 3.0, "{a:?}");
        // mean + 4 sd is well under the floor here, so the floor is the threshold.
        assert_eq!(a.threshold, 20.0);
        assert!(h.det.in_episode(&IMAPS));
        // Back to quiet: the episode ends without another alert.
        h.quiet(&IMAPS, 5);
        assert!(!h.det.in_episode(&IMAPS));
    }

    #[test]
    fn continuing_spike_is_one_episode_and_does_not_move_the_baseline() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 20);
        assert_eq!(h.step(&[(&IMAPS, 200)]).len(), 1);
        let before = h.det.baseline(&IMAPS).unwrap();
        for _ in 0..10 {
            assert!(h.step(&[(&IMAPS, 300)]).is_empty());
        }
        assert_eq!(h.det.baseline(&IMAPS).unwrap(), before, "an attack was learned");
        assert!(h.det.in_episode(&IMAPS));
    }

    #[test]
    fn a_new_spike_after_calm_buckets_is_a_new_episode() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 20);
        assert_eq!(h.step(&[(&IMAPS, 200)]).len(), 1);
        // One calm bucket short of the end: a new spike continues the same episode.
        h.quiet(&IMAPS, 2);
        assert!(h.step(&[(&IMAPS, 200)]).is_empty());
        // Three calm buckets end it; the next spike is reported again.
        h.quiet(&IMAPS, 3);
        assert!(!h.det.in_episode(&IMAPS));
        assert_eq!(h.step(&[(&IMAPS, 200)]).len(), 1);
    }

    #[test]
    fn nothing_during_warmup() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 3);
        // Buckets 3, 4 and 5 are still warm-up (6 buckets needed).
        for _ in 0..3 {
            assert!(h.step(&[(&IMAPS, 500)]).is_empty());
        }
        assert!(!h.det.in_episode(&IMAPS));
    }

    #[test]
    fn nothing_below_the_floor_even_far_above_a_zero_baseline() {
        let mut h = Harness::new(test_settings());
        for _ in 0..20 {
            assert!(h.step(&[]).is_empty());
        }
        assert!(h.step(&[(&IMAPS, 20)]).is_empty(), "at the floor is not above it");
        assert!(h.step(&[(&IMAPS, 19)]).is_empty());
        assert!(!h.det.in_episode(&IMAPS));
    }

    #[test]
    fn a_series_first_seen_in_a_flood_has_zero_history() {
        let mut h = Harness::new(test_settings());
        // The detector runs past warm-up with other traffic only.
        h.quiet(&POP3S, 10);
        let found = h.step(&[(&IMAPS, 100), (&POP3S, 3)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].series, IMAPS);
        assert_eq!((found[0].mean, found[0].stddev, found[0].threshold), (0.0, 0.0, 20.0));
    }

    #[test]
    fn gradual_growth_never_alerts() {
        // +5% per bucket with a half-life of 20 buckets: the baseline lags, but its variance
        // grows with it. (Growth must be slow relative to the half-life; see module docs.)
        let mut h = Harness::new(Settings { half_life: Duration::from_secs(20), ..test_settings() });
        for i in 0..150 {
            let n = (5.0 * 1.05f64.powi(i)).round() as u64;
            assert!(h.step(&[(&IMAPS, n)]).is_empty(), "bucket {i} ({n} events) alerted");
        }
        assert!(h.det.baseline(&IMAPS).unwrap().0 > 1000.0);
    }

    #[test]
    fn daily_growth_with_default_settings_never_alerts() {
        // 10 s buckets, 1 h half-life; traffic doubles every 6 hours for a day (3 -> 48).
        let mut h = Harness::new(Settings::default());
        for i in 0..8640 {
            let n = (3.0 * 2f64.powf(f64::from(i) / 2160.0)).round() as u64;
            assert!(h.step(&[(&IMAPS, n)]).is_empty(), "bucket {i} ({n} events) alerted");
        }
    }

    #[test]
    fn a_long_pause_is_caught_up_cheaply_and_quietly() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 30);
        let busy = h.det.baseline(&IMAPS).unwrap();
        // No tick for an hour (3600 buckets), then normal traffic again. (Cheap even bucket by
        // bucket; the hundred years below are what only a catch-up in one step survives.)
        assert!(h.det.tick(h.base + Duration::from_secs(30 + 3600)).is_empty());
        let idle = h.det.baseline(&IMAPS).unwrap();
        assert!(idle.0 < busy.0 / 1000.0, "{busy:?} -> {idle:?}");
        h.next = 30 + 3600;
        h.quiet(&IMAPS, 10);

        // A hundred years of 1 ms buckets (3e12 of them) cost no more.
        let base = Instant::now();
        let mut det = Detector::new(Settings { bucket: Duration::from_millis(1), ..Settings::default() }, base);
        det.record(&IMAPS, 5, base);
        det.record(&IMAPS, 5, base + Duration::from_millis(1));
        if let Some(later) = base.checked_add(Duration::from_secs(100 * 365 * 86_400)) {
            // Walked bucket by bucket, 3e12 buckets take hours: a deadline of a minute tells that
            // apart from one step on any machine, however loaded (a limit of milliseconds depends
            // on how busy the machine is).
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let found = det.tick(later);
                let _ = done.send((det, found));
            });
            let (det, found) = finished.recv_timeout(Duration::from_secs(60)).expect("a century of buckets caught up");
            assert!(found.is_empty());
            let (mean, sd) = det.baseline(&IMAPS).unwrap();
            assert!(mean.is_finite() && sd.is_finite() && mean < 1e-6, "{mean} {sd}");
        }
    }

    #[test]
    fn series_are_independent() {
        let mut h = Harness::new(test_settings());
        for i in 0..20u64 {
            let (a, b) = (2 + i % 3, 3 + i % 2);
            assert!(h.step(&[(&IMAPS, a), (&POP3S, b), (&ALL, a + b)]).is_empty());
        }
        // The caller records a spike on imaps and, as it always does, on overall.
        let found = h.step(&[(&IMAPS, 200), (&POP3S, 4), (&ALL, 204)]);
        let series: Vec<&Series> = found.iter().map(|a| &a.series).collect();
        assert_eq!(series, [&IMAPS, &ALL]);
        assert!(!h.det.in_episode(&POP3S));
        // Other metrics of the same listener are separate series too.
        let auth = Series { metric: Metric::AuthFailures, listener: Some(Listener::Imaps) };
        assert!(!h.det.in_episode(&auth) && h.det.baseline(&auth).is_none());
    }

    #[test]
    fn baseline_reports_values() {
        let mut h = Harness::new(test_settings());
        assert_eq!(h.det.baseline(&IMAPS), None, "never recorded");
        h.det.record(&IMAPS, 1, h.base);
        assert_eq!(h.det.baseline(&IMAPS), None, "no bucket closed yet");
        h.next = 1;
        h.det.tick(h.base + h.bucket);
        for _ in 0..50 {
            h.step(&[(&IMAPS, 10), (&POP3S, if h.next.is_multiple_of(2) { 0 } else { 100 })]);
        }
        let (mean, sd) = h.det.baseline(&IMAPS).unwrap();
        assert!((mean - 10.0).abs() < 0.5, "{mean}");
        // Constant traffic has no learned variance: the Poisson term sqrt(mean) is reported.
        assert!((sd - mean.sqrt()).abs() < 1e-9, "{sd}");
        let (mean, sd) = h.det.baseline(&POP3S).unwrap();
        assert!((mean - 50.0).abs() < 10.0 && (sd - 50.0).abs() < 10.0, "{mean} {sd}");
    }

    #[test]
    fn records_after_a_missed_tick_land_in_their_own_bucket() {
        let mut h = Harness::new(test_settings());
        h.quiet(&IMAPS, 10);
        // A spike in bucket 10, then quiet events in bucket 11, with no tick in between.
        h.det.record(&IMAPS, 200, h.base + Duration::from_millis(10_500));
        h.det.record(&IMAPS, 3, h.base + Duration::from_millis(11_500));
        let found = h.det.tick(h.base + Duration::from_secs(12));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].observed, 200.0);
        assert!(h.det.tick(h.base + Duration::from_secs(12)).is_empty(), "reported twice");
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let base = Instant::now();
        let odd = [
            Settings {
                bucket: Duration::ZERO,
                half_life: Duration::ZERO,
                k: f64::NAN,
                floor: -1.0,
                warmup_buckets: 0,
                calm_buckets: 0,
            },
            Settings { half_life: Duration::MAX, k: f64::INFINITY, floor: f64::INFINITY, ..Settings::default() },
            Settings {
                bucket: Duration::MAX,
                k: -3.0,
                floor: f64::NAN,
                warmup_buckets: u32::MAX,
                ..Settings::default()
            },
        ];
        for settings in odd {
            let mut det = Detector::new(settings, base);
            for i in 0..50u64 {
                let now = base + Duration::from_millis(i * 7);
                det.record(&IMAPS, u64::MAX, now);
                det.record(&IMAPS, u64::MAX, now);
                det.record(&ALL, i, now);
                // A timestamp before the start, and time going backwards.
                det.record(&ALL, 1, base.checked_sub(Duration::from_secs(1)).unwrap_or(base));
                for a in det.tick(now) {
                    assert!(a.observed.is_finite() && a.mean.is_finite() && a.stddev.is_finite());
                }
            }
            let _ = det.tick(base + Duration::from_secs(86_400 * 365));
            if let Some((mean, sd)) = det.baseline(&IMAPS) {
                assert!(mean.is_finite() && sd.is_finite());
            }
        }
    }

    #[test]
    fn warmup_is_the_plain_average_and_population_variance() {
        let p = Params::new(&test_settings(), Duration::from_secs(1));
        let mut s = State { series: IMAPS, count: 0, mean: 0.0, var: 0.0, learned: 0, in_episode: false, calm: 0 };
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            s.learn(x, &p);
        }
        assert!((s.mean - 5.0).abs() < 1e-12 && (s.var - 4.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn empty_buckets_in_closed_form_match_one_at_a_time() {
        let p = Params::new(&test_settings(), Duration::from_secs(1));
        assert_eq!(p.plain_len, 87); // 1 / (1 - 0.5^(1/60)) = 87.07
                                     // Starting inside the plain-average phase and crossing into the EWMA phase.
        for (learned, m) in [(3u64, 20u64), (80, 50), (200, 300), (0, 10)] {
            let mut fast = State { series: IMAPS, count: 0, mean: 7.0, var: 3.0, learned, in_episode: false, calm: 0 };
            if learned == 0 {
                (fast.mean, fast.var) = (0.0, 0.0);
            }
            let mut slow = fast.clone();
            fast.close_empty(m, &p);
            for _ in 0..m {
                assert!(slow.close(0.0, &p).is_none());
            }
            assert_eq!(fast.learned, slow.learned);
            assert!((fast.mean - slow.mean).abs() < 1e-9, "{fast:?} {slow:?}");
            assert!((fast.var - slow.var).abs() < 1e-9, "{fast:?} {slow:?}");
        }
        // Inside an episode the first empty buckets only end it, then the rest are learned.
        let mut s = State { series: IMAPS, count: 0, mean: 4.0, var: 1.0, learned: 100, in_episode: true, calm: 1 };
        s.close_empty(2, &p);
        assert!(!s.in_episode && s.learned == 100 && s.mean == 4.0);
        s.close_empty(5, &p);
        assert_eq!(s.learned, 105);
    }
}
