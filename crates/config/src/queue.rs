//! `[queue]`: how long the outbound queue keeps trying (issue 15): the first wait after a
//! temporary failure, the longest wait, when a message is given up and bounced, and when its
//! sender is told it is late. The policy itself (and its consistency check) is
//! `portcullis_queue::RetrySchedule`, so what is checked here is what the runner uses. Beside
//! it, how many deliveries the runner makes at once (`max_parallel`) and how hard one
//! destination is pressed (`destination_*`, the runner's `portcullis_queue::DestinationLimits`).

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

pub use portcullis_queue::{DestinationLimits, RetrySchedule};
use std::time::Duration;

const RETRY_FIRST: &str = "5m";
const RETRY_MAX_INTERVAL: &str = "4h";
const EXPIRE: &str = "5d";
const DELAY_NOTICE: &str = "4h";
/// Deliveries (connections) at once: Postfix's `default_process_limit` is 100 for a busy
/// relay; a small server's outbound mail rarely needs a fifth of it, and the per-destination
/// limit keeps any one domain to a few of them.
const MAX_PARALLEL: usize = 20;
/// Connections at once to one destination: Postfix's `default_destination_concurrency_limit`
/// is 20; a small server's mail to one domain is a trickle, and big receivers throttle
/// senders that open many connections.
const DESTINATION_CONNECTIONS: usize = 5;
/// Connections started a minute to one destination; 0: no limit.
const DESTINATION_CONNECTIONS_PER_MINUTE: u32 = 60;
/// The pause for a destination after a connection-level failure (refused, no answer, 421).
const DESTINATION_BACKOFF: &str = "1m";

/// How the queue runner works, apart from the retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRunner {
    /// Deliveries in progress at once, over every destination.
    pub max_parallel: usize,
    /// What any one destination gets: connections at once, started a minute, the pause after
    /// a connection-level failure.
    pub destination: DestinationLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    retry_first: Option<String>,
    retry_max_interval: Option<String>,
    expire: Option<String>,
    delay_notice: Option<String>,
    max_parallel: Option<usize>,
    destination_connections: Option<usize>,
    destination_connections_per_minute: Option<u32>,
    destination_backoff: Option<String>,
}

impl RawQueue {
    pub(crate) fn runner(&self, c: &Check<'_>) -> Result<QueueRunner, ConfigError> {
        let per_minute = c.never_or_at_least(
            1,
            "queue.destination_connections_per_minute",
            self.destination_connections_per_minute,
            DESTINATION_CONNECTIONS_PER_MINUTE,
        )?;
        let destination = DestinationLimits {
            concurrency: c.positive(
                "queue.destination_connections",
                self.destination_connections,
                DESTINATION_CONNECTIONS,
            )?,
            // 0 written in the file: no rate limit, only the concurrency one.
            rate: (per_minute > 0).then_some((per_minute, Duration::from_secs(60))),
            backoff: c.duration("queue.destination_backoff", self.destination_backoff.clone(), DESTINATION_BACKOFF)?,
        };
        Ok(QueueRunner {
            max_parallel: c.positive("queue.max_parallel", self.max_parallel, MAX_PARALLEL)?,
            destination,
        })
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
    fn destination_limits_default_to_the_limiters_and_are_checked() {
        let d = parse("").unwrap().queue_runner.destination;
        assert_eq!(d, portcullis_queue::DestinationLimits::default());
        let d = parse(
            "[queue]\ndestination_connections = 2\ndestination_connections_per_minute = 10\ndestination_backoff = \"30s\"\n",
        )
        .unwrap()
        .queue_runner
        .destination;
        assert_eq!(d.concurrency, 2);
        assert_eq!(d.rate, Some((10, Duration::from_secs(60))));
        assert_eq!(d.backoff, Duration::from_secs(30));
        let d = parse("[queue]\ndestination_connections_per_minute = 0\n").unwrap().queue_runner.destination;
        assert_eq!(d.rate, None);
        let e = parse("[queue]\ndestination_connections = 0\n").unwrap_err();
        assert!(e.contains("queue.destination_connections") && e.contains("at least 1"), "{e}");
        let e = parse("[queue]\ndestination_backoff = \"0s\"\n").unwrap_err();
        assert!(e.contains("queue.destination_backoff") && e.contains("longer than zero"), "{e}");
        let e = parse("[queue]\ndestination_backoff = \"soon\"\n").unwrap_err();
        assert!(e.contains("queue.destination_backoff"), "{e}");
    }

    #[test]
    fn an_inconsistent_schedule_names_the_section() {
        let e = parse("[queue]\nretry_first = \"1h\"\nretry_max_interval = \"10m\"\n").unwrap_err();
        assert!(e.contains("queue") && e.contains("longest retry interval"), "{e}");
        let e = parse("[queue]\ndelay_notice = \"6d\"\n").unwrap_err();
        assert!(e.contains("delay notice"), "{e}");
    }
}
