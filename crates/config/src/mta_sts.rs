//! `[mta_sts]`: whether outbound delivery looks up and honours the MTA-STS policies of
//! destination domains (RFC 8461): on by default, so a domain that publishes `mode: enforce`
//! never gets its mail over unauthenticated TLS or in the clear. `port` is the HTTPS port the
//! policy is fetched from: 443 (§3.3); tests use another.

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtaSts {
    pub enabled: bool,
    pub port: u16,
}

impl Default for MtaSts {
    fn default() -> MtaSts {
        MtaSts { enabled: true, port: 443 }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMtaSts {
    enabled: Option<bool>,
    port: Option<u16>,
}

impl RawMtaSts {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<MtaSts, ConfigError> {
        let port = self.port.unwrap_or(443);
        if port == 0 {
            return Err(c.invalid("mta_sts.port", "must be a port number (1-65535)"));
        }
        Ok(MtaSts { enabled: self.enabled.unwrap_or(true), port })
    }
}
