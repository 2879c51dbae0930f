//! `[tls]`: the certificate every listener presents, the oldest TLS version offered, and how
//! long a handshake may take. rustls offers nothing older than 1.2, so "1.2" is the floor.
//! `[tls] acme = { directory, contact }` adds a certificate from an ACME CA (RFC 8555) beside
//! the configured one, chosen by SNI for the names it covers (docs/discovery.md).

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
    /// A certificate from an ACME CA, kept up to date by the server; `None`: only `cert`.
    pub acme: Option<Acme>,
}

/// `tls.acme`: where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// The CA's directory URL (RFC 8555 §7.1.1), `https://…`.
    pub directory: String,
    /// The account's contact, `mailto:…` (RFC 8555 §7.3).
    pub contact: String,
    /// CA certificates (PEM) trusted for the directory's HTTPS beside the public roots: a
    /// private CA, or a test CA.
    pub directory_ca: Option<PathBuf>,
    /// The CA's domain for the CAA record `portcullis dns` prints (RFC 8659 §4.2); `None`:
    /// derived from the directory's host ([`Acme::caa_issuer`]).
    pub caa: Option<String>,
    /// How the CA checks that the names are ours.
    pub challenge: AcmeChallenge,
}

/// `tls.acme.challenge` (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737, in the TLS handshake on port 443: the HTTPS listener answers.
    TlsAlpn01,
    /// RFC 8555 §8.3, over plain HTTP on port 80: `listen.http` answers.
    Http01,
}

impl Acme {
    /// The CA's domain as CAA names it (RFC 8659 §4.2): `caa` when set, else the last two
    /// labels of the directory's host (`acme-v02.api.letsencrypt.org` → `letsencrypt.org`),
    /// which is right for the big CAs whose CAA domain is their own; `None` for an IP address
    /// or a one-label host, which no CAA record can name.
    pub fn caa_issuer(&self) -> Option<String> {
        if let Some(caa) = &self.caa {
            return Some(caa.clone());
        }
        let host = self.directory_host()?;
        if host.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
        (labels.len() >= 2).then(|| labels[labels.len() - 2..].join("."))
    }

    /// The directory URL's host, lower case, without a port.
    pub fn directory_host(&self) -> Option<String> {
        let rest = self.directory.strip_prefix("https://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    directory: Option<String>,
    contact: Option<String>,
    directory_ca: Option<String>,
    caa: Option<String>,
    challenge: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    min_version: Option<String>,
    handshake_timeout: Option<String>,
    acme: Option<RawAcme>,
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
            acme: self.acme.map(|a| a.validate(c)).transpose()?,
        })
    }
}

impl RawAcme {
    fn validate(self, c: &Check<'_>) -> Result<Acme, ConfigError> {
        let directory = self.directory.ok_or_else(|| {
            c.invalid(
                "tls.acme.directory",
                "is required (the CA's directory URL, e.g. \"https://acme-v02.api.letsencrypt.org/directory\")",
            )
        })?;
        let acme = Acme {
            directory,
            contact: String::new(),
            directory_ca: None,
            caa: None,
            challenge: AcmeChallenge::TlsAlpn01,
        };
        // RFC 8555 §6.1: all ACME traffic is HTTPS.
        if acme.directory_host().is_none() {
            return Err(c.invalid("tls.acme.directory", format!("\"{}\" is not an https:// URL", acme.directory)));
        }
        let contact = self.contact.ok_or_else(|| {
            c.invalid(
                "tls.acme.contact",
                "is required (\"mailto:postmaster@example.org\": the CA writes there before a certificate expires)",
            )
        })?;
        let address = contact.strip_prefix("mailto:").unwrap_or("");
        if crate::names::normalize_address(address).is_none() {
            return Err(c.invalid("tls.acme.contact", format!("\"{contact}\" is not mailto: followed by an address")));
        }
        let caa = match self.caa {
            Some(caa) => Some(
                crate::names::normalize_domain(&caa)
                    .ok_or_else(|| c.invalid("tls.acme.caa", format!("\"{caa}\" is not a domain name")))?,
            ),
            None => None,
        };
        let challenge = match self.challenge.as_deref().unwrap_or("tls-alpn-01") {
            "tls-alpn-01" => AcmeChallenge::TlsAlpn01,
            "http-01" => AcmeChallenge::Http01,
            other => {
                return Err(
                    c.invalid("tls.acme.challenge", format!("must be \"tls-alpn-01\" or \"http-01\", not \"{other}\""))
                )
            }
        };
        Ok(Acme { contact, directory_ca: self.directory_ca.map(|f| c.file(&f)), caa, challenge, ..acme })
    }
}
