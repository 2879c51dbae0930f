//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, server side (RFC 5802, RFC 7677), with `tls-exporter`
//! channel binding (RFC 9266).
//!
//! The server never sees the password: it keeps a salt, an iteration count, StoredKey and
//! ServerKey, derived when the password is set. The client proves it knows the password, and
//! with -PLUS that it talks to us over *this* TLS connection: a man in the middle, even one
//! holding a forged certificate, terminates TLS itself and cannot produce our connection's
//! exporter value. The exchange is three messages:
//! client-first (`n,,n=user,r=cnonce`), server-first (`r=nonce,s=salt,i=iterations`),
//! client-final (`c=binding,r=nonce,p=proof`), then server-final (`v=signature`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::SaslError;

/// The label for the channel binding data (RFC 9266 §2): 32 bytes exported from the TLS
/// session with this label and no context.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// Longest username or nonce accepted (hostile clients send megabytes otherwise).
const MAX_FIELD: usize = 512;

/// What the server keeps per account.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramKeys").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ScramKeys {
    /// Derives the keys from a password (SASLprep'd, as clients do) with a fresh salt.
    pub fn derive(password: &str, iterations: u32) -> Result<ScramKeys, SaslError> {
        let salt: [u8; 16] = rand::random();
        ScramKeys::derive_with_salt(password, &salt, iterations)
    }

    pub fn derive_with_salt(password: &str, salt: &[u8], iterations: u32) -> Result<ScramKeys, SaslError> {
        let prepared = stringprep::saslprep(password).map_err(|_| SaslError::Malformed)?;
        let salted: [u8; 32] = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(prepared.as_bytes(), salt, iterations.max(1));
        let client_key = hmac(&salted, b"Client Key");
        Ok(ScramKeys {
            salt: salt.to_vec(),
            iterations: iterations.max(1),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        })
    }

    /// Keys no password matches, that look like real ones: for unknown users, so that the
    /// exchange tells nothing about which accounts exist. The salt is derived from the name
    /// with `secret`, so it is the same every time the same name is tried.
    pub fn decoy(username: &str, secret: &[u8], iterations: u32) -> ScramKeys {
        let salt = hmac(secret, username.as_bytes());
        ScramKeys { salt: salt[..16].to_vec(), iterations, stored_key: rand::random(), server_key: rand::random() }
    }
}

/// Channel binding the client asked for in its gs2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// "n": the client does not support it.
    None,
    /// "y": the client supports it but thinks we do not (a downgrade, since we do).
    ClientOnly,
    /// "p=tls-exporter".
    TlsExporter,
}

pub(crate) enum State {
    /// Waiting for client-first.
    Start {
        plus: bool,
        binding_data: Option<Vec<u8>>,
    },
    /// client-first parsed; waiting for the account's keys.
    Lookup {
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
        binding_data: Option<Vec<u8>>,
        authzid: String,
        username: String,
    },
    /// server-first sent; waiting for client-final.
    Challenged {
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        keys: ScramKeys,
        binding_data: Option<Vec<u8>>,
        authzid: String,
        username: String,
    },
    /// server-final sent; waiting for the client's empty acknowledgement.
    Proven {
        authzid: String,
        username: String,
    },
    Finished,
}

/// Outcome of one SCRAM step.
pub(crate) enum Next {
    Challenge(Vec<u8>),
    Lookup(String),
    Verified {
        authzid: String,
        username: String,
    },
    /// A wrong proof (`Wrong`), or a right one bound to another connection (`BindingMismatch`).
    Rejected {
        username: String,
        proof: crate::ScramProof,
    },
    Failed(SaslError),
}

/// `=2C` is ",", `=3D` is "="; any other "=" is an error (RFC 5802 §5.1).
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.len() <= MAX_FIELD && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

impl State {
    pub(crate) fn new(plus: bool, binding_data: Option<Vec<u8>>) -> State {
        State::Start { plus, binding_data }
    }

    pub(crate) fn step(&mut self, data: &[u8]) -> Next {
        match std::mem::replace(self, State::Finished) {
            State::Start { plus, binding_data } => self.client_first(plus, binding_data, data),
            State::Challenged {
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
                keys,
                binding_data,
                authzid,
                username,
            } => self.client_final(
                data,
                &gs2_header,
                &client_first_bare,
                &server_first,
                &nonce,
                &keys,
                binding_data.as_deref(),
                authzid,
                username,
            ),
            State::Proven { authzid, username } if data.is_empty() => Next::Verified { authzid, username },
            State::Proven { .. } | State::Lookup { .. } | State::Finished => Next::Failed(SaslError::Malformed),
        }
    }

    fn client_first(&mut self, plus: bool, binding_data: Option<Vec<u8>>, data: &[u8]) -> Next {
        let Ok(text) = std::str::from_utf8(data) else { return Next::Failed(SaslError::Malformed) };
        if text.len() > 4 * MAX_FIELD {
            return Next::Failed(SaslError::Malformed);
        }
        // gs2-header: cbind-flag "," [ "a=" authzid ] ","
        let mut parts = text.splitn(3, ',');
        let (Some(flag), Some(authz), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
            return Next::Failed(SaslError::Malformed);
        };
        let binding = match flag {
            "n" => Binding::None,
            "y" => Binding::ClientOnly,
            "p=tls-exporter" => Binding::TlsExporter,
            _ => return Next::Failed(SaslError::UnsupportedChannelBinding),
        };
        // With -PLUS the client must bind; without it, a client that could bind but saw no
        // -PLUS ("y") was downgraded: we do offer -PLUS (RFC 5802 §6).
        match (plus, &binding) {
            (true, Binding::TlsExporter) if binding_data.is_some() => {}
            (false, Binding::None) => {}
            (false, Binding::ClientOnly) => return Next::Failed(SaslError::Downgrade),
            _ => return Next::Failed(SaslError::UnsupportedChannelBinding),
        }
        let authzid = match authz {
            "" => String::new(),
            a => match a.strip_prefix("a=").and_then(unescape) {
                Some(a) => a,
                None => return Next::Failed(SaslError::Malformed),
            },
        };
        // client-first-message-bare: "n=" saslname ",r=" c-nonce ["," extensions]
        let mut fields = bare.split(',');
        let (Some(user), Some(nonce)) = (fields.next(), fields.next()) else {
            return Next::Failed(SaslError::Malformed);
        };
        if bare.starts_with("m=") {
            return Next::Failed(SaslError::Malformed); // mandatory extensions: none supported
        }
        let (Some(username), Some(client_nonce)) =
            (user.strip_prefix("n=").and_then(unescape), nonce.strip_prefix("r="))
        else {
            return Next::Failed(SaslError::Malformed);
        };
        if username.is_empty() || username.len() > MAX_FIELD || !printable_nonce(client_nonce) {
            return Next::Failed(SaslError::Malformed);
        }
        let gs2_header = format!("{flag},{authz},");
        *self = State::Lookup {
            gs2_header,
            client_first_bare: bare.to_string(),
            client_nonce: client_nonce.to_string(),
            binding_data,
            authzid,
            username: username.clone(),
        };
        Next::Lookup(username)
    }

    /// The account's keys (or a decoy): answers with server-first.
    pub(crate) fn keys(&mut self, keys: ScramKeys) -> Next {
        let State::Lookup { gs2_header, client_first_bare, client_nonce, binding_data, authzid, username } =
            std::mem::replace(self, State::Finished)
        else {
            return Next::Failed(SaslError::Malformed);
        };
        let server_nonce: [u8; 24] = rand::random();
        let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&keys.salt), keys.iterations);
        let challenge = server_first.clone().into_bytes();
        *self = State::Challenged {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            keys,
            binding_data,
            authzid,
            username,
        };
        Next::Challenge(challenge)
    }

    #[allow(clippy::too_many_arguments)]
    fn client_final(
        &mut self,
        data: &[u8],
        gs2_header: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
        keys: &ScramKeys,
        binding_data: Option<&[u8]>,
        authzid: String,
        username: String,
    ) -> Next {
        let Ok(text) = std::str::from_utf8(data) else { return Next::Failed(SaslError::Malformed) };
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else { return Next::Failed(SaslError::Malformed) };
        let mut fields = without_proof.split(',');
        let (Some(channel), Some(echoed)) = (fields.next(), fields.next()) else {
            return Next::Failed(SaslError::Malformed);
        };
        let mut expected_channel = gs2_header.as_bytes().to_vec();
        if gs2_header.starts_with("p=") {
            expected_channel.extend_from_slice(binding_data.unwrap_or_default());
        }
        let channel_ok = channel
            .strip_prefix("c=")
            .and_then(|c| BASE64.decode(c).ok())
            .is_some_and(|c| bool::from(c.ct_eq(&expected_channel)));
        if echoed.strip_prefix("r=") != Some(nonce) {
            return Next::Failed(SaslError::Malformed);
        }
        let Ok(proof) = BASE64.decode(proof) else { return Next::Failed(SaslError::BadBase64) };
        if proof.len() != 32 {
            return Next::Failed(SaslError::Malformed);
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        // The binding counts as part of the proof: a mismatch is a failed login. A right
        // proof with the wrong binding is what a man in the middle relaying a real client
        // produces, so it is told apart for the log.
        let proof_ok = bool::from(stored.ct_eq(&keys.stored_key));
        match (proof_ok, channel_ok) {
            (true, true) => {}
            (true, false) => return Next::Rejected { username, proof: crate::ScramProof::BindingMismatch },
            (false, _) => return Next::Rejected { username, proof: crate::ScramProof::Wrong },
        }
        let server_signature = hmac(&keys.server_key, auth_message.as_bytes());
        *self = State::Proven { authzid, username };
        Next::Challenge(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client written from the RFC, to drive the server side.
    struct Client {
        password: String,
        nonce: String,
        gs2: String,
        binding: Vec<u8>,
        first_bare: String,
    }

    impl Client {
        fn new(user: &str, password: &str, gs2: &str, binding: &[u8]) -> Client {
            Client {
                password: password.into(),
                nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
                gs2: gs2.into(),
                binding: binding.to_vec(),
                first_bare: format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL"),
            }
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2, self.first_bare).into_bytes()
        }

        fn final_message(&self, server_first: &str) -> (Vec<u8>, [u8; 32]) {
            let mut fields = server_first.split(',');
            let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
            assert!(nonce.starts_with(&self.nonce));
            let salt = BASE64.decode(fields.next().unwrap().strip_prefix("s=").unwrap()).unwrap();
            let iterations: u32 = fields.next().unwrap().strip_prefix("i=").unwrap().parse().unwrap();
            let salted: [u8; 32] = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(self.password.as_bytes(), &salt, iterations);
            let client_key = hmac(&salted, b"Client Key");
            let stored: [u8; 32] = Sha256::digest(client_key).into();
            let mut channel = self.gs2.as_bytes().to_vec();
            channel.extend_from_slice(&self.binding);
            let without_proof = format!("c={},r={nonce}", BASE64.encode(channel));
            let auth = format!("{},{server_first},{without_proof}", self.first_bare);
            let signature = hmac(&stored, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
            let server_key = hmac(&salted, b"Server Key");
            (format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(), hmac(&server_key, auth.as_bytes()))
        }
    }

    fn run(client: &Client, keys: ScramKeys, plus: bool, binding: Option<&[u8]>) -> Next {
        let mut state = State::new(plus, binding.map(<[u8]>::to_vec));
        match state.step(&client.first()) {
            Next::Lookup(user) => assert_eq!(user, "user"),
            _ => panic!("no lookup"),
        }
        let Next::Challenge(server_first) = state.keys(keys) else { panic!() };
        let (last, expected_signature) = client.final_message(std::str::from_utf8(&server_first).unwrap());
        match state.step(&last) {
            Next::Challenge(server_final) => {
                assert_eq!(server_final, format!("v={}", BASE64.encode(expected_signature)).into_bytes());
                state.step(b"")
            }
            other => other,
        }
    }

    #[test]
    fn rfc7677_keys_and_a_full_exchange() {
        // The salt and iteration count of the RFC 7677 §3 example.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = ScramKeys::derive_with_salt("pencil", &salt, 4096).unwrap();
        let client = Client::new("user", "pencil", "n,,", b"");
        assert!(
            matches!(run(&client, keys.clone(), false, None), Next::Verified { username, .. } if username == "user")
        );
        let wrong = Client::new("user", "pencils", "n,,", b"");
        assert!(matches!(run(&wrong, keys, false, None), Next::Rejected { proof: crate::ScramProof::Wrong, .. }));
    }

    #[test]
    fn channel_binding_must_match_this_connection() {
        let keys = ScramKeys::derive("pencil", 4096).unwrap();
        let ours = [7u8; 32];
        let bound = Client::new("user", "pencil", "p=tls-exporter,,", &ours);
        assert!(matches!(run(&bound, keys.clone(), true, Some(&ours)), Next::Verified { .. }));
        // A man in the middle relays a client bound to *its* TLS session.
        let relayed = Client::new("user", "pencil", "p=tls-exporter,,", &[9u8; 32]);
        let relayed_run = run(&relayed, keys.clone(), true, Some(&ours));
        assert!(matches!(relayed_run, Next::Rejected { proof: crate::ScramProof::BindingMismatch, .. }));
        // -PLUS without binding, and the downgrade flag, fail.
        let mut state = State::new(true, Some(ours.to_vec()));
        assert!(matches!(state.step(b"n,,n=user,r=abc"), Next::Failed(SaslError::UnsupportedChannelBinding)));
        let mut state = State::new(false, Some(ours.to_vec()));
        assert!(matches!(state.step(b"y,,n=user,r=abc"), Next::Failed(SaslError::Downgrade)));
        let mut state = State::new(true, Some(ours.to_vec()));
        assert!(matches!(
            state.step(b"p=tls-unique,,n=user,r=abc"),
            Next::Failed(SaslError::UnsupportedChannelBinding)
        ));
    }

    #[test]
    fn names_are_unescaped_and_garbage_fails() {
        let mut state = State::new(false, None);
        assert!(matches!(state.step(b"n,a=al=2Cice,n=a=3Db,r=xyz"), Next::Lookup(u) if u == "a=b"));
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=,r=x",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=a=ZZ,r=x",
            b"q,,n=u,r=x",
            b"n,,m=ext,n=u,r=x",
            b"\xff\xfe",
        ] {
            let mut state = State::new(false, None);
            assert!(matches!(state.step(bad), Next::Failed(_)), "{bad:?}");
        }
        let mut state = State::new(false, None);
        let long = format!("n,,n={},r=x", "a".repeat(10_000));
        assert!(matches!(state.step(long.as_bytes()), Next::Failed(_)));
    }

    #[test]
    fn a_wrong_nonce_or_a_short_proof_fails() {
        let keys = ScramKeys::derive("pencil", 16).unwrap();
        let mut state = State::new(false, None);
        state.step(b"n,,n=user,r=abc");
        let Next::Challenge(_) = state.keys(keys) else { panic!() };
        assert!(matches!(state.step(b"c=biws,r=other,p=AAAA"), Next::Failed(_)));
    }

    #[test]
    fn decoys_look_alike_and_are_stable() {
        let a = ScramKeys::decoy("ghost@example.org", b"secret", 4096);
        let b = ScramKeys::decoy("ghost@example.org", b"secret", 4096);
        assert_eq!(a.salt, b.salt);
        assert_eq!(a.salt.len(), 16);
        assert_ne!(a.stored_key, b.stored_key);
    }
}
