//! `[relay]`: the optional smart host (DESIGN §3): every outbound message goes to it instead of
//! the recipients' exchangers, always over TLS 1.2 or 1.3 with a certificate valid for `host`
//! (implicit TLS on 465 as RFC 8314 prefers, or STARTTLS, required), with AUTH if a username is
//! given. The password lives in a file of its own (`password_file`), never in this one, so the
//! config can be shown and kept in version control; the server reads it when it starts.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::names::is_hostname;

/// How the connection to the smart host is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// TLS from the first byte (RFC 8314 §3.3, port 465).
    Implicit,
    /// STARTTLS (RFC 3207), required: a smart host that does not offer it gets nothing.
    StartTls,
}

/// The login at the smart host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLogin {
    pub username: String,
    /// The file holding the password (its first line), relative to the config file.
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub login: Option<RelayLogin>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelay {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<String>,
}

impl RawRelay {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Relay, ConfigError> {
        let host = self
            .host
            .ok_or_else(|| c.invalid("relay.host", "is required when [relay] is present (the smart host's name)"))?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        // A name, not an address: the certificate is checked against it.
        if !is_hostname(&host) || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(
                c.invalid("relay.host", format!("\"{host}\" is not a host name (its certificate must name it)"))
            );
        }
        let tls = match self.tls.as_deref().unwrap_or("implicit") {
            "implicit" => RelayTls::Implicit,
            "starttls" => RelayTls::StartTls,
            other => {
                return Err(c.invalid("relay.tls", format!("\"{other}\" is not one of \"implicit\", \"starttls\"")))
            }
        };
        // RFC 8314 §3.3: 465 for implicit TLS; RFC 6409 §3.1: 587 for STARTTLS.
        let port = self.port.unwrap_or(if tls == RelayTls::Implicit { 465 } else { 587 });
        if port == 0 {
            return Err(c.invalid("relay.port", "must be a port number (1-65535)"));
        }
        let login = match (self.username, self.password_file) {
            (None, None) => None,
            (Some(username), Some(file)) => {
                if username.is_empty() || username.chars().any(char::is_control) {
                    return Err(c.invalid("relay.username", "must be a non-empty name without control characters"));
                }
                if file.trim().is_empty() {
                    return Err(c.invalid("relay.password_file", "must name the file that holds the password"));
                }
                Some(RelayLogin { username, password_file: c.file(&file) })
            }
            (Some(_), None) => {
                return Err(c.invalid(
                    "relay.password_file",
                    "is required with relay.username: the file that holds the password (never the password itself)",
                ))
            }
            (None, Some(_)) => return Err(c.invalid("relay.username", "is required with relay.password_file")),
        };
        Ok(Relay { host, port, tls, login })
    }
}

#[cfg(test)]
mod tests {
    use super::{RawRelay, RelayTls};
    use crate::Config;
    use std::path::Path;

    const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/p.toml"), &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_direct_delivery() {
        assert!(parse("").unwrap().relay.is_none());
        let _ = RawRelay::default(); // the raw form has a default, as every section's
    }

    #[test]
    fn ports_follow_the_tls_mode_and_the_password_file_is_relative_to_the_config() {
        let r = parse("[relay]\nhost = \"Smtp.Provider.Example.\"\n").unwrap().relay.unwrap();
        assert_eq!((r.host.as_str(), r.port, r.tls), ("smtp.provider.example", 465, RelayTls::Implicit));
        assert!(r.login.is_none());
        let r = parse("[relay]\nhost = \"smtp.provider.example\"\ntls = \"starttls\"\nusername = \"me\"\npassword_file = \"relay.secret\"\n")
            .unwrap()
            .relay
            .unwrap();
        assert_eq!((r.port, r.tls), (587, RelayTls::StartTls));
        let login = r.login.unwrap();
        assert_eq!((login.username.as_str(), login.password_file.as_path()), ("me", Path::new("/etc/relay.secret")));
        let r = parse("[relay]\nhost = \"smtp.provider.example\"\nport = 2465\n").unwrap().relay.unwrap();
        assert_eq!(r.port, 2465);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[relay]\nport = 465\n", "relay.host"),
            ("[relay]\nhost = \"192.0.2.1\"\n", "relay.host"),
            ("[relay]\nhost = \"not a name\"\n", "relay.host"),
            ("[relay]\nhost = \"h.example\"\ntls = \"none\"\n", "relay.tls"),
            ("[relay]\nhost = \"h.example\"\nport = 0\n", "relay.port"),
            ("[relay]\nhost = \"h.example\"\nusername = \"me\"\n", "relay.password_file"),
            ("[relay]\nhost = \"h.example\"\npassword_file = \"p\"\n", "relay.username"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        // The password itself is not a key: it would sit in the config file.
        assert!(parse("[relay]\nhost = \"h.example\"\npassword = \"x\"\n").unwrap_err().contains("password"));
    }
}
