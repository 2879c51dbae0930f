//! `[queue]`: how long the outbound queue keeps trying (issue 15): the first wait after a
//! temporary failure, the longest wait, when a message is given up and bounced, and when its
//! sender is told it is late. The policy itself (and its consistency check) is
//! `portcullis_queue::RetrySchedule`, so what is checked here is what the runner uses. Beside
//! it, how many deliveries the runner makes at once (`max_parallel`).

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

pub use portcullis_queue::RetrySchedule;

const RETRY_FIRST: &str = "5m";
const RETRY_MAX_INTERVAL: &str = "4h";
const EXPIRE: &str = "5d";
const DELAY_NOTICE: &str = "4h";
/// Deliveries (connections) at once: Postfix's `default_process_limit` is 100 for a busy
/// relay; a small server's outbound mail rarely needs a fifth of it, and the per-destination
/// limit keeps any one domain to a few of them.
const MAX_PARALLEL: usize = 20;

/// How the queue runner works, apart from the retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRunner {
    /// Deliveries in progress at once, over every destination.
    pub max_parallel: usize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    retry_first: Option<String>,
    retry_max_interval: Option<String>,
    expire: Option<String>,
    delay_notice: Option<String>,
    max_parallel: Option<usize>,
}

impl RawQueue {
    pub(crate) fn runner(&self, c: &Check<'_>) -> Result<QueueRunner, ConfigError> {
        Ok(QueueRunner { max_parallel: c.positive("queue.max_parallel", self.max_parallel, MAX_PARALLEL)? })
    }

    pub(crate) fn validate(self, c: &Check<'_>) -> Result<RetrySchedule, ConfigError> {
        let delay = c.duration_or_zero("queue.delay_notice", self.delay_notice, DELAY_NOTICE)?;
        let schedule = RetrySchedule {
            first_retry: c.duration("queue.retry_first", self.retry_first, RETRY_FIRST)?,
            max_interval: c.duration("queue.retry_max_interval", self.retry_max_interval, RETRY_MAX_INTERVAL)?,
            expire_after: c.duration("queue.expire", self.expire, EXPIRE)?,
            // RFC 3461 §4.1 lets the MTA decide whether to send delay notices; "0s": never.
            delay_notice_after: (!delay.is_zero()).then_some(delay),
        };
        schedule.validate().map_err(|m| c.invalid("queue", m))?;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/p.toml"), &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_never_a_delay_notice() {
        assert_eq!(parse("").unwrap().queue, portcullis_queue::RetrySchedule::default());
        let q = parse(
            "[queue]\nretry_first = \"2s\"\nretry_max_interval = \"10s\"\nexpire = \"1m\"\ndelay_notice = \"0s\"\n",
        )
        .unwrap()
        .queue;
        assert_eq!(
            (q.first_retry, q.max_interval, q.expire_after),
            (Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(60))
        );
        assert_eq!(q.delay_notice_after, None);
    }

    #[test]
    fn max_parallel_has_a_default_and_refuses_zero() {
        assert_eq!(parse("").unwrap().queue_runner.max_parallel, 20);
        assert_eq!(parse("[queue]\nmax_parallel = 3\n").unwrap().queue_runner.max_parallel, 3);
        let e = parse("[queue]\nmax_parallel = 0\n").unwrap_err();
        assert!(e.contains("queue.max_parallel") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn an_inconsistent_schedule_names_the_section() {
        let e = parse("[queue]\nretry_first = \"1h\"\nretry_max_interval = \"10m\"\n").unwrap_err();
        assert!(e.contains("queue") && e.contains("longest retry interval"), "{e}");
        let e = parse("[queue]\ndelay_notice = \"6d\"\n").unwrap_err();
        assert!(e.contains("delay notice"), "{e}");
    }
}
