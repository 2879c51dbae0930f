//! `[tls]`: the certificate every listener presents, the oldest TLS version offered, and how
//! long a handshake may take. rustls offers nothing older than 1.2, so "1.2" is the floor.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

const MIN_VERSION: &str = "1.2";
const HANDSHAKE_TIMEOUT: &str = "10s";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
    pub handshake_timeout: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    min_version: Option<String>,
    handshake_timeout: Option<String>,
}

impl RawTls {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Tls, ConfigError> {
        let min_version = match self.min_version.as_deref().unwrap_or(MIN_VERSION) {
            "1.2" => TlsVersion::V1_2,
            "1.3" => TlsVersion::V1_3,
            other => {
                return Err(c.invalid(
                    "tls.min_version",
                    format!("must be \"1.2\" or \"1.3\", not \"{other}\" (older versions are never offered)"),
                ))
            }
        };
        Ok(Tls {
            cert: c.file(&self.cert.ok_or_else(|| c.invalid("tls.cert", "is required (a PEM certificate chain)"))?),
            key: c.file(&self.key.ok_or_else(|| c.invalid("tls.key", "is required (a PEM private key)"))?),
            min_version,
            handshake_timeout: c.duration("tls.handshake_timeout", self.handshake_timeout, HANDSHAKE_TIMEOUT)?,
        })
    }
}
