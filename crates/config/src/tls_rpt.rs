//! `[tls_rpt]`: TLS reports (RFC 8460) about this server's outbound sessions: off by default.
//! When on, once a `period` (a day, as §4.1 expects) the sessions of the period are summed per
//! recipient domain, and each domain that publishes `_smtp._tls` with a `mailto:` address gets
//! its report as a message from `sender`, through the outbound queue.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::names::normalize_address;

/// The period by default: one day (RFC 8460 §4.1: reports cover 24 hours, UTC days).
const PERIOD: &str = "24h";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRpt {
    pub enabled: bool,
    /// The From and envelope sender of the reports (a local address, so that a failure
    /// notice has a mailbox to go to); required when `enabled`.
    pub sender: Option<String>,
    /// How long each report covers; the first starts when the server starts.
    pub period: Duration,
}

impl Default for TlsRpt {
    fn default() -> TlsRpt {
        TlsRpt { enabled: false, sender: None, period: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTlsRpt {
    enabled: Option<bool>,
    sender: Option<String>,
    period: Option<String>,
}

impl RawTlsRpt {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<TlsRpt, ConfigError> {
        let enabled = self.enabled.unwrap_or(false);
        let sender = match self.sender {
            Some(text) => Some(
                normalize_address(&text)
                    .ok_or_else(|| c.invalid("tls_rpt.sender", format!("\"{text}\" is not an email address")))?,
            ),
            None if enabled => {
                return Err(c.invalid(
                    "tls_rpt.sender",
                    "is required with tls_rpt.enabled = true: the address reports are sent from (a local account)",
                ))
            }
            None => None,
        };
        let period = c.duration("tls_rpt.period", self.period, PERIOD)?;
        Ok(TlsRpt { enabled, sender, period })
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;

    const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/p.toml"), &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_a_sender_when_on() {
        assert!(!parse("").unwrap().tls_rpt.enabled);
        let t =
            parse("[tls_rpt]\nenabled = true\nsender = \"Reports@Example.org\"\nperiod = \"1h\"\n").unwrap().tls_rpt;
        assert!(t.enabled);
        assert_eq!(t.sender.as_deref(), Some("reports@example.org"));
        assert_eq!(t.period, std::time::Duration::from_secs(3600));
        assert!(parse("[tls_rpt]\nenabled = true\n").unwrap_err().contains("tls_rpt.sender"));
        assert!(parse("[tls_rpt]\nsender = \"nobody\"\n").unwrap_err().contains("tls_rpt.sender"));
        assert!(parse("[tls_rpt]\nperiod = \"0s\"\n").unwrap_err().contains("tls_rpt.period"));
    }
}
