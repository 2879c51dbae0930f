//! `[alerts]`: where an operator is told (a webhook, a local mailbox), from which severity on,
//! and how the anomaly detector tells a storm from ordinary traffic.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

const NOTIFY: &str = "warning";
const BUCKET: &str = "10s";
const BASELINE_HALF_LIFE: &str = "1h";
const DEVIATIONS: f64 = 4.0;
const FLOOR: f64 = 20.0;
const WARMUP_BUCKETS: u32 = 6;

/// The least severe alert that is sent to the webhook and the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotifySeverity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone)]
pub struct Alerts {
    /// POST each alert as JSON here.
    pub webhook: Option<String>,
    /// Deliver each alert as a message to this local mailbox.
    pub mail_to: Option<String>,
    /// Alerts below this severity are only logged, not sent ("info", "warning", "critical").
    pub notify: NotifySeverity,
    /// Length of the counting bucket of the anomaly detector.
    pub bucket: Duration,
    pub baseline_half_life: Duration,
    /// An anomaly is this many standard deviations above the baseline...
    pub deviations: f64,
    /// ...and above this many events per bucket.
    pub floor: f64,
    pub warmup_buckets: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    webhook: Option<String>,
    mail_to: Option<String>,
    notify: Option<String>,
    bucket: Option<String>,
    baseline_half_life: Option<String>,
    deviations: Option<f64>,
    floor: Option<f64>,
    warmup_buckets: Option<u32>,
}

impl RawAlerts {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Alerts, ConfigError> {
        if let Some(url) = &self.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(c.invalid("alerts.webhook", format!("\"{url}\" is not an http:// or https:// URL")));
            }
        }
        let deviations = self.deviations.unwrap_or(DEVIATIONS);
        if !(deviations.is_finite() && deviations > 0.0) {
            return Err(c.invalid("alerts.deviations", "must be a positive number"));
        }
        let floor = self.floor.unwrap_or(FLOOR);
        if !(floor.is_finite() && floor >= 0.0) {
            return Err(c.invalid("alerts.floor", "must be zero or more"));
        }
        let notify = match self.notify.as_deref().unwrap_or(NOTIFY) {
            "info" => NotifySeverity::Info,
            "warning" => NotifySeverity::Warning,
            "critical" => NotifySeverity::Critical,
            other => {
                return Err(c.invalid(
                    "alerts.notify",
                    format!("must be \"info\", \"warning\" or \"critical\", not \"{other}\""),
                ))
            }
        };
        let bucket = c.duration("alerts.bucket", self.bucket, BUCKET)?;
        let baseline_half_life =
            c.duration("alerts.baseline_half_life", self.baseline_half_life, BASELINE_HALF_LIFE)?;
        if self.mail_to.as_deref().is_some_and(|a| !a.contains('@')) {
            return Err(c.invalid("alerts.mail_to", "must be a local address such as \"postmaster@example.org\""));
        }
        Ok(Alerts {
            webhook: self.webhook,
            mail_to: self.mail_to,
            notify,
            bucket,
            baseline_half_life,
            deviations,
            floor,
            warmup_buckets: self.warmup_buckets.unwrap_or(WARMUP_BUCKETS),
        })
    }
}
