//! SASL exchanges shared by SMTP, POP3 and IMAP: the protocols frame the lines (`334 `, `+ `),
//! this decodes them. PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login, for old SMTP
//! clients).
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What the client presented, to be checked by the authenticator.
pub struct Credentials {
    pub authzid: String,
    pub username: String,
    pub password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("authentication cancelled")]
    Cancelled,
    #[error("invalid base64")]
    BadBase64,
    #[error("malformed SASL message")]
    Malformed,
}

#[derive(Debug)]
pub enum Step {
    /// Send this challenge (raw; the protocol base64-encodes it) and feed the reply to
    /// [`Exchange::step`].
    Challenge(&'static [u8]),
    Done(Credentials),
    Failed(SaslError),
}

pub struct Exchange {
    mechanism: Mechanism,
    username: Option<String>,
}

/// RFC 4616 limits each field to 255 octets.
const MAX_FIELD: usize = 255;

impl Exchange {
    /// Starts an exchange; `initial_response` is the SASL-IR argument as sent (base64, or
    /// "=" for an empty response).
    pub fn start(mechanism: Mechanism, initial_response: Option<&[u8]>) -> (Exchange, Step) {
        let mut exchange = Exchange { mechanism, username: None };
        let step = match initial_response {
            Some(response) => exchange.step(response),
            None => match mechanism {
                Mechanism::Plain => Step::Challenge(b""),
                Mechanism::Login => Step::Challenge(b"Username:"),
            },
        };
        (exchange, step)
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feeds one client line (without CRLF).
    pub fn step(&mut self, line: &[u8]) -> Step {
        let data = match decode_line(line) {
            Ok(data) => data,
            Err(e) => return Step::Failed(e),
        };
        match self.mechanism {
            Mechanism::Plain => match decode_plain(&data) {
                Ok(credentials) => Step::Done(credentials),
                Err(e) => Step::Failed(e),
            },
            Mechanism::Login => match self.username.take() {
                None => match utf8_field(&data) {
                    Ok(username) => {
                        self.username = Some(username);
                        Step::Challenge(b"Password:")
                    }
                    Err(e) => Step::Failed(e),
                },
                Some(username) if data.len() <= MAX_FIELD => {
                    Step::Done(Credentials { authzid: String::new(), username, password: data })
                }
                Some(_) => Step::Failed(SaslError::Malformed),
            },
        }
    }
}

/// A client line: "*" cancels (RFC 4954 §4), "=" is an empty response, otherwise base64.
fn decode_line(line: &[u8]) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    let line = line.trim_ascii();
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Zeroizing::new(Vec::new())),
        _ => BASE64.decode(line).map(Zeroizing::new).map_err(|_| SaslError::BadBase64),
    }
}

fn utf8_field(bytes: &[u8]) -> Result<String, SaslError> {
    if bytes.is_empty() || bytes.len() > MAX_FIELD || bytes.contains(&0) {
        return Err(SaslError::Malformed);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed)
}

/// `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
fn decode_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SaslError::Malformed);
    };
    if password.is_empty() || password.len() > MAX_FIELD || password.contains(&0) {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials {
        authzid: if authzid.is_empty() { String::new() } else { utf8_field(authzid)? },
        username: utf8_field(authcid)?,
        password: Zeroizing::new(password.to_vec()),
    })
}

/// Base64 for a challenge line.
pub fn encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        BASE64.encode(s).into_bytes()
    }

    fn done(step: Step) -> Credentials {
        match step {
            Step::Done(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0alice@example.org\0secret")));
        let c = done(step);
        assert_eq!(
            (c.authzid.as_str(), c.username.as_str(), &c.password[..]),
            ("", "alice@example.org", &b"secret"[..])
        );

        let (mut ex, step) = Exchange::start(Mechanism::Plain, None);
        assert!(matches!(step, Step::Challenge(b"")));
        let c = done(ex.step(&b64(b"alice@example.org\0alice@example.org\0pw")));
        assert_eq!(c.authzid, "alice@example.org");
    }

    #[test]
    fn login_asks_for_username_then_password() {
        let (mut ex, step) = Exchange::start(Mechanism::Login, None);
        assert!(matches!(step, Step::Challenge(b"Username:")));
        assert!(matches!(ex.step(&b64(b"bob@example.org")), Step::Challenge(b"Password:")));
        let c = done(ex.step(&b64(b"hunter2hunter2")));
        assert_eq!((c.username.as_str(), &c.password[..]), ("bob@example.org", &b"hunter2hunter2"[..]));

        let (mut ex, step) = Exchange::start(Mechanism::Login, Some(&b64(b"bob@example.org")));
        assert!(matches!(step, Step::Challenge(b"Password:")));
        assert!(matches!(ex.step(b"*"), Step::Failed(SaslError::Cancelled)));
    }

    #[test]
    fn garbage_fails_cleanly() {
        for bad in [
            &b"!!!"[..],
            &b64(b"no nuls here"),
            &b64(b"\0\0"),
            &b64(b"\0user\0"),
            &b64(&[0xff, 0, 0xfe, 0, b'p']),
            &b64(&[b'a'; 300]),
        ] {
            let (_, step) = Exchange::start(Mechanism::Plain, Some(bad));
            assert!(matches!(step, Step::Failed(_)), "{bad:?}");
        }
        let (_, step) = Exchange::start(Mechanism::Plain, Some(b"="));
        assert!(matches!(step, Step::Failed(SaslError::Malformed)));
        let (_, step) = Exchange::start(Mechanism::Plain, Some(b"*"));
        assert!(matches!(step, Step::Failed(SaslError::Cancelled)));
        assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    }

    #[test]
    fn credentials_never_print_the_password() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0u@x.y\0topsecret")));
        assert!(!format!("{:?}", done(step)).contains("topsecret"));
    }
}
