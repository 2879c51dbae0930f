//! SASL exchanges shared by SMTP, POP3 and IMAP: the protocols frame the lines (`334 `, `+ `),
//! this decodes them. PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login, for old SMTP
//! clients), and SCRAM-SHA-256 with or without channel binding (see [`scram`]).
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use zeroize::Zeroizing;

pub mod scram;
pub use scram::ScramKeys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    ScramSha256,
    /// With `tls-exporter` channel binding.
    ScramSha256Plus,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-256-PLUS" => Some(Mechanism::ScramSha256Plus),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    fn is_scram(self) -> bool {
        matches!(self, Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)
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

/// What an exchange ends with, for the authenticator: a password to check, or a SCRAM proof
/// already checked against the account's keys.
#[derive(Debug)]
pub enum Attempt {
    Password(Credentials),
    Scram { authzid: String, username: String, proof: ScramProof },
}

/// How a SCRAM client's proof turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramProof {
    /// It knows the password (and, with -PLUS, is on this TLS connection).
    Valid,
    /// Wrong password, or an unknown user.
    Wrong,
    /// The right password proven over another TLS connection: a man in the middle relaying a
    /// real client (who saw a different certificate).
    BindingMismatch,
}

impl Attempt {
    pub fn username(&self) -> &str {
        match self {
            Attempt::Password(c) => &c.username,
            Attempt::Scram { username, .. } => username,
        }
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
    #[error("unsupported channel binding")]
    UnsupportedChannelBinding,
    #[error("channel binding downgrade")]
    Downgrade,
}

#[derive(Debug)]
pub enum Step {
    /// Send this challenge (raw; the protocol base64-encodes it) and feed the reply to
    /// [`Exchange::step`].
    Challenge(Vec<u8>),
    /// SCRAM: look up this user's keys (or make a decoy) and pass them to [`Exchange::keys`].
    Lookup {
        username: String,
    },
    /// The exchange is over: a password to check (PLAIN, LOGIN), or a SCRAM proof already
    /// checked, valid or not; either way the authenticator decides and the guard counts it.
    Attempt(Attempt),
    Failed(SaslError),
}

pub struct Exchange {
    mechanism: Mechanism,
    username: Option<String>,
    /// Boxed: the SCRAM state (keys, nonces, messages) is large and sessions hold an exchange.
    scram: Option<Box<scram::State>>,
}

fn scram_step(next: scram::Next) -> Step {
    match next {
        scram::Next::Challenge(c) => Step::Challenge(c),
        scram::Next::Lookup(username) => Step::Lookup { username },
        scram::Next::Verified { authzid, username } => {
            Step::Attempt(Attempt::Scram { authzid, username, proof: ScramProof::Valid })
        }
        scram::Next::Rejected { username, proof } => {
            Step::Attempt(Attempt::Scram { authzid: String::new(), username, proof })
        }
        scram::Next::Failed(e) => Step::Failed(e),
    }
}

/// RFC 4616 limits each field to 255 octets.
const MAX_FIELD: usize = 255;

impl Exchange {
    /// Starts an exchange; `initial_response` is the SASL-IR argument as sent (base64, or
    /// "=" for an empty response). `channel_binding` is this TLS connection's `tls-exporter`
    /// value (see [`scram::TLS_EXPORTER_LABEL`]), for SCRAM-SHA-256-PLUS.
    pub fn start(
        mechanism: Mechanism,
        initial_response: Option<&[u8]>,
        channel_binding: Option<&[u8]>,
    ) -> (Exchange, Step) {
        let scram = mechanism.is_scram().then(|| {
            Box::new(scram::State::new(mechanism == Mechanism::ScramSha256Plus, channel_binding.map(<[u8]>::to_vec)))
        });
        let mut exchange = Exchange { mechanism, username: None, scram };
        let step = match initial_response {
            Some(response) => exchange.step(response),
            None => match mechanism {
                Mechanism::Login => Step::Challenge(b"Username:".to_vec()),
                _ => Step::Challenge(Vec::new()),
            },
        };
        (exchange, step)
    }

    /// SCRAM: the keys asked for by [`Step::Lookup`].
    pub fn keys(&mut self, keys: ScramKeys) -> Step {
        match &mut self.scram {
            Some(state) => scram_step(state.keys(keys)),
            None => Step::Failed(SaslError::Malformed),
        }
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
        if let Some(state) = &mut self.scram {
            return scram_step(state.step(&data));
        }
        match self.mechanism {
            Mechanism::Plain => match decode_plain(&data) {
                Ok(credentials) => Step::Attempt(Attempt::Password(credentials)),
                Err(e) => Step::Failed(e),
            },
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Step::Failed(SaslError::Malformed),
            Mechanism::Login => match self.username.take() {
                None => match utf8_field(&data) {
                    Ok(username) => {
                        self.username = Some(username);
                        Step::Challenge(b"Password:".to_vec())
                    }
                    Err(e) => Step::Failed(e),
                },
                Some(username) if data.len() <= MAX_FIELD => {
                    Step::Attempt(Attempt::Password(Credentials { authzid: String::new(), username, password: data }))
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
            Step::Attempt(Attempt::Password(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0alice@example.org\0secret")), None);
        let c = done(step);
        assert_eq!(
            (c.authzid.as_str(), c.username.as_str(), &c.password[..]),
            ("", "alice@example.org", &b"secret"[..])
        );

        let (mut ex, step) = Exchange::start(Mechanism::Plain, None, None);
        assert!(matches!(step, Step::Challenge(ref c) if c.is_empty()));
        let c = done(ex.step(&b64(b"alice@example.org\0alice@example.org\0pw")));
        assert_eq!(c.authzid, "alice@example.org");
    }

    #[test]
    fn login_asks_for_username_then_password() {
        let (mut ex, step) = Exchange::start(Mechanism::Login, None, None);
        assert!(matches!(step, Step::Challenge(ref c) if c == b"Username:"));
        assert!(matches!(ex.step(&b64(b"bob@example.org")), Step::Challenge(ref c) if c == b"Password:"));
        let c = done(ex.step(&b64(b"hunter2hunter2")));
        assert_eq!((c.username.as_str(), &c.password[..]), ("bob@example.org", &b"hunter2hunter2"[..]));

        let (mut ex, step) = Exchange::start(Mechanism::Login, Some(&b64(b"bob@example.org")), None);
        assert!(matches!(step, Step::Challenge(ref c) if c == b"Password:"));
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
            let (_, step) = Exchange::start(Mechanism::Plain, Some(bad), None);
            assert!(matches!(step, Step::Failed(_)), "{bad:?}");
        }
        let (_, step) = Exchange::start(Mechanism::Plain, Some(b"="), None);
        assert!(matches!(step, Step::Failed(SaslError::Malformed)));
        let (_, step) = Exchange::start(Mechanism::Plain, Some(b"*"), None);
        assert!(matches!(step, Step::Failed(SaslError::Cancelled)));
        assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    }

    #[test]
    fn credentials_never_print_the_password() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0u@x.y\0topsecret")), None);
        assert!(!format!("{:?}", done(step)).contains("topsecret"));
    }
}
