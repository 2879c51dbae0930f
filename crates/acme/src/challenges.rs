//! The answers to pending challenges, shared between the manager (which puts them in while an
//! order is validated and takes them out after) and the listeners (which serve them):
//! - TLS-ALPN-01 (RFC 8737): a self-signed certificate for the name carrying the
//!   `acmeIdentifier` extension (the SHA-256 of the key authorization), presented only to a
//!   client that offers the `acme-tls/1` protocol and only for a name with a pending
//!   challenge; [`ChallengeResolver`] puts it in front of the server's own certificates.
//! - HTTP-01 (RFC 8555 §8.3): token to key authorization, for
//!   `/.well-known/acme-challenge/TOKEN`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// RFC 8737 §6.2: the ALPN protocol of the TLS-ALPN-01 handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The ALPN list of the HTTPS listener: `acme-tls/1` for the validator, `http/1.1` for
/// everyone else (a normal client never offers the first).
pub fn https_alpn_protocols() -> Vec<Vec<u8>> {
    vec![ACME_TLS_ALPN.to_vec(), b"http/1.1".to_vec()]
}

/// True when a connection negotiated `acme-tls/1`: RFC 8737 §3 says it carries no
/// application data, so the listener closes it after the handshake.
pub fn is_challenge_connection(alpn: Option<&[u8]>) -> bool {
    alpn == Some(ACME_TLS_ALPN)
}

/// The pending answers.
#[derive(Default)]
pub struct Challenges {
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    http: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    pub fn new() -> Arc<Challenges> {
        Arc::new(Challenges::default())
    }

    /// The key authorization for an HTTP-01 token, if it is pending.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.http.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, if a challenge for it is pending.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn.read().unwrap_or_else(|p| p.into_inner()).get(&name.to_ascii_lowercase()).cloned()
    }

    pub(crate) fn put_http01(&self, token: &str, key_authorization: &str) {
        self.http.write().unwrap_or_else(|p| p.into_inner()).insert(token.into(), key_authorization.into());
    }

    pub(crate) fn remove_http01(&self, token: &str) {
        self.http.write().unwrap_or_else(|p| p.into_inner()).remove(token);
    }

    /// Makes and holds the challenge certificate for `name` (RFC 8737 §3).
    pub(crate) fn put_tls_alpn01(&self, name: &str, key_authorization_digest: &[u8]) -> Result<(), String> {
        let key = challenge_certificate(name, key_authorization_digest)?;
        self.tls_alpn.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_ascii_lowercase(), key);
        Ok(())
    }

    pub(crate) fn remove_tls_alpn01(&self, name: &str) {
        self.tls_alpn.write().unwrap_or_else(|p| p.into_inner()).remove(&name.to_ascii_lowercase());
    }
}

/// RFC 8737 §3: self-signed, the name as its only dNSName, and the critical `acmeIdentifier`
/// extension holding the SHA-256 digest of the key authorization.
fn challenge_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let why = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate for {name}: {e}");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(why)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(why)?;
    let cert = params.self_signed(&key).map_err(why)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `certified_key`: its fit check parses the certificate with webpki, which refuses
    // the critical acmeIdentifier extension; the key was made for this certificate just above.
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)))
}

/// Puts pending TLS-ALPN-01 answers in front of the server's own certificate choice: a
/// handshake that offers `acme-tls/1` gets the challenge certificate for its server name (or
/// nothing, which fails the handshake), every other handshake is `inner`'s.
#[derive(Debug)]
pub struct ChallengeResolver {
    challenges: Arc<Challenges>,
    inner: Arc<dyn ResolvesServerCert>,
}

impl ChallengeResolver {
    pub fn new(challenges: Arc<Challenges>, inner: Arc<dyn ResolvesServerCert>) -> ChallengeResolver {
        ChallengeResolver { challenges, inner }
    }
}

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wants_challenge = hello.alpn().is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if wants_challenge {
            // RFC 8737 §3: only the challenge certificate, never the real one, on acme-tls/1.
            return hello.server_name().and_then(|name| self.challenges.tls_alpn01(name));
        }
        self.inner.resolve(hello)
    }
}
