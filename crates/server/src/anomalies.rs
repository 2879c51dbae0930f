//! The anomaly detector at work: a [`Sink`] that counts connection attempts, refusals, failed
//! logins (the admin listener's bearer tokens and sign-ins too) and bans (per listener and
//! overall) into the guard's [`Detector`], and the task that
//! ticks it and raises one `alert_raised` event per anomaly episode. Also the alert on an
//! account whose outbound mail bounces en masse ([`permanent_failures`]), which the queue
//! runner reports and the guard counts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_events::{AlertKind, Event, Events, Listener, Record, Severity, Sink};
use portcullis_guard::anomaly::{Anomaly, Detector, Metric, Series, Settings};
use portcullis_guard::Now;
use tokio_util::sync::CancellationToken;

/// The detector, fed from the event stream.
pub struct AnomalyDetector {
    detector: Mutex<Detector>,
}

const METRICS: [Metric; 4] =
    [Metric::ConnectionAttempts, Metric::AuthFailures, Metric::RefusedConnections, Metric::Bans];

/// Where a metric is counted: overall (`None`), and on each listener, the admin listener too.
fn scopes() -> impl Iterator<Item = Option<Listener>> {
    std::iter::once(None).chain(Listener::EVERY.into_iter().map(Some))
}

impl AnomalyDetector {
    pub fn new(config: &portcullis_config::Alerts) -> Arc<AnomalyDetector> {
        let settings = Settings {
            bucket: config.bucket,
            half_life: config.baseline_half_life,
            k: config.deviations,
            floor: config.floor,
            warmup_buckets: config.warmup_buckets,
            ..Settings::default()
        };
        Arc::new(AnomalyDetector { detector: Mutex::new(Detector::new(settings, Instant::now())) })
    }

    /// The learned baseline of a series: (mean, standard deviation) per bucket.
    pub fn baseline(&self, series: &Series) -> Option<(f64, f64)> {
        self.detector.lock().ok().and_then(|d| d.baseline(series))
    }

    fn count(&self, metric: Metric, listener: Option<Listener>) {
        let now = Instant::now();
        if let Ok(mut d) = self.detector.lock() {
            if listener.is_some() {
                d.record(&Series { metric, listener }, 1, now);
            }
            d.record(&Series { metric, listener: None }, 1, now);
        }
    }

    /// Closes finished buckets; the anomalies that start an incident now. A spike on one
    /// listener is also a spike overall, possibly a bucket later: an incident is a metric
    /// being anomalous in any scope, and it is reported once, when it starts.
    pub fn tick(&self) -> Vec<Anomaly> {
        let Ok(mut d) = self.detector.lock() else { return Vec::new() };
        let ongoing: Vec<Metric> = METRICS
            .into_iter()
            .filter(|&metric| scopes().any(|listener| d.in_episode(&Series { metric, listener })))
            .collect();
        let mut reported: Vec<Metric> = Vec::new();
        let mut incidents = Vec::new();
        for anomaly in d.tick(Instant::now()) {
            let metric = anomaly.series.metric;
            if !ongoing.contains(&metric) && !reported.contains(&metric) {
                reported.push(metric);
                incidents.push(anomaly);
            }
        }
        incidents
    }
}

impl Sink for AnomalyDetector {
    fn accept(&self, record: &Record) {
        match &record.event {
            Event::ConnectionOpened { listener, .. } => self.count(Metric::ConnectionAttempts, Some(*listener)),
            Event::ConnectionRefused { listener, .. } => {
                self.count(Metric::ConnectionAttempts, Some(*listener));
                self.count(Metric::RefusedConnections, Some(*listener));
            }
            Event::AuthFailed { listener, .. } => self.count(Metric::AuthFailures, Some(*listener)),
            // A wrong bearer token or a refused sign-in: a failed login on the admin listener.
            Event::AdminAuthFailed { .. } => self.count(Metric::AuthFailures, Some(Listener::Admin)),
            Event::BanAdded { .. } => self.count(Metric::Bans, None),
            _ => {}
        }
    }
}

fn describe(anomaly: &Anomaly, bucket: Duration) -> (AlertKind, String) {
    let (kind, what) = match anomaly.series.metric {
        Metric::ConnectionAttempts => (AlertKind::ConnectionSpike, "connection attempts"),
        Metric::AuthFailures => (AlertKind::AuthFailureSpike, "failed logins"),
        Metric::RefusedConnections => (AlertKind::RefusalSpike, "refused connections"),
        Metric::Bans => (AlertKind::BanSpike, "bans"),
    };
    let scope = anomaly.series.listener.map(|l| format!(" on {l}")).unwrap_or_default();
    let message = format!(
        "{} {what}{scope} in {}, against a baseline of {:.1} (threshold {:.1})",
        anomaly.observed,
        humantime::format_duration(bucket),
        anomaly.mean,
        anomaly.threshold
    );
    (kind, message)
}

/// Ticks the detector every half bucket and raises an alert for each new anomaly.
pub async fn watch(detector: Arc<AnomalyDetector>, events: Events, bucket: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval((bucket / 2).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        for anomaly in detector.tick() {
            let (kind, message) = describe(&anomaly, bucket);
            let listener = anomaly.series.listener;
            events.emit(Event::AlertRaised {
                kind,
                severity: Severity::Warning,
                listener,
                account: None,
                peer: None,
                observed: anomaly.observed,
                baseline: Some(anomaly.mean),
                threshold: Some(anomaly.threshold),
                message,
            });
        }
    }
}

/// The queue runner's report: `failures` recipients of one attempt at mail from `sender` (a
/// local account's address) failed for good. The guard counts them per account; when that
/// takes the account over `guard.bounce_alert_after` within `guard.bounce_window`, a critical
/// `outbound_bounces` alert, once until it is back under it.
pub fn permanent_failures(shared: &crate::state::Shared, sender: &str, failures: usize) {
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let Some(storm) = shared.guard.permanent_failures(sender, failures, Now::current()) else { return };
    let threshold = shared.config.guard.bounce_alert_after;
    let message = format!(
        "mail from {sender} failed for good for {} recipients within {} (alert at {threshold}): \
         the account may be compromised and sending spam; see `portcullis queue list`, and hold its mail",
        storm.failures,
        humantime::format_duration(storm.window)
    );
    shared.events.emit(Event::AlertRaised {
        kind: AlertKind::OutboundBounces,
        severity: Severity::Critical,
        listener: None,
        account: Some(sender.to_string()),
        peer: None,
        observed: storm.failures as f64,
        baseline: None,
        threshold: Some(threshold as f64),
        message,
    });
}
