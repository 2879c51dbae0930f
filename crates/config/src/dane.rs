//! `[dane]`: whether outbound delivery looks up and honours DANE TLSA records (RFC 7672): on by
//! default. It only takes effect where the resolver (`[dns] servers`) validates DNSSEC and says
//! so with the AD bit; answers without it are never trusted for DANE (§2.2).

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dane {
    pub enabled: bool,
}

impl Default for Dane {
    fn default() -> Dane {
        Dane { enabled: true }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDane {
    enabled: Option<bool>,
}

impl RawDane {
    pub(crate) fn validate(self, _c: &Check<'_>) -> Result<Dane, ConfigError> {
        Ok(Dane { enabled: self.enabled.unwrap_or(true) })
    }
}
