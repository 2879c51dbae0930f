//! DKIM private keys: made here (RSA-2048 or Ed25519), kept as PKCS#8 (PEM on disk), and
//! published as the DNS TXT record verifiers read (RFC 6376 §3.6.1, RFC 8463 §4).
//!
//! ring does all signing but cannot generate RSA keys, so RSA generation (and reading the
//! public half of an RSA key) uses the `rsa` crate; it never performs a private-key
//! operation here, so no timing of ours can leak the key (deny.toml says the same).

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::fmt;
use zeroize::Zeroizing;

/// The two algorithms worth signing with (RFC 8301 §3.1 retires rsa-sha1; RFC 8463 adds
/// ed25519-sha256). Sign with both: verifiers that know no Ed25519 still check the RSA one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl Algorithm {
    /// The `a=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The key record's `k=` value.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

/// RSA modulus size: RFC 8301 §3.2 asks for at least 1024 bits and recommends 2048; longer
/// keys' records no longer fit a 255-octet TXT string and are often mishandled.
pub const RSA_BITS: usize = 2048;

/// A key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DKIM key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

/// A private signing key and its public half as published.
pub struct SigningKey {
    algorithm: Algorithm,
    /// PKCS#8 DER; wiped when dropped.
    pkcs8: Zeroizing<Vec<u8>>,
    /// What `p=` carries: SubjectPublicKeyInfo DER for RSA (as opendkim and every verifier
    /// expect, RFC 6376 errata 3017), the raw 32-octet key for Ed25519 (RFC 8463 §4.2).
    public: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key, not even in a debug print.
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm).field("public", &self.public_base64()).finish()
    }
}

impl SigningKey {
    /// A new key from the system's random source.
    pub fn generate(algorithm: Algorithm) -> Result<SigningKey, KeyError> {
        match algorithm {
            Algorithm::Ed25519Sha256 => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| KeyError("the system's random source failed".into()))?;
                SigningKey::from_pkcs8_der(pkcs8.as_ref())
            }
            Algorithm::RsaSha256 => {
                let key = rsa::PrivateKey::new(&mut rand::rng(), RSA_BITS)
                    .map_err(|e| KeyError(format!("generating an RSA key: {e}")))?;
                let pkcs8 = key.to_pkcs8_der().map_err(|e| KeyError(format!("encoding the RSA key: {e}")))?;
                SigningKey::from_pkcs8_der(pkcs8.as_bytes())
            }
        }
    }

    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa -traditional` writes).
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| KeyError(format!("not a PEM private key: {e}")))?;
        match der {
            PrivateKeyDer::Pkcs8(pkcs8) => SigningKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(pkcs1) => {
                let key = rsa::PrivateKey::from_pkcs1_der(pkcs1.secret_pkcs1_der())
                    .map_err(|e| KeyError(format!("not an RSA private key: {e}")))?;
                let pkcs8 = key.to_pkcs8_der().map_err(|e| KeyError(format!("encoding the RSA key: {e}")))?;
                SigningKey::from_pkcs8_der(pkcs8.as_bytes())
            }
            _ => Err(KeyError("only RSA and Ed25519 keys sign DKIM (this is an EC key)".into())),
        }
    }

    /// Reads a PKCS#8 DER private key, RSA or Ed25519, checking that ring can sign with it.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = pair.public_key().as_ref().to_vec();
            return Ok(SigningKey { algorithm: Algorithm::Ed25519Sha256, pkcs8: Zeroizing::new(der.to_vec()), public });
        }
        ring::signature::RsaKeyPair::from_pkcs8(der)
            .map_err(|e| KeyError(format!("neither an Ed25519 nor a usable RSA key: {e}")))?;
        let key = rsa::PrivateKey::from_pkcs8_der(der).map_err(|e| KeyError(format!("reading the RSA key: {e}")))?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| KeyError(format!("encoding the RSA public key: {e}")))?;
        Ok(SigningKey { algorithm: Algorithm::RsaSha256, pkcs8: Zeroizing::new(der.to_vec()), public: spki.into_vec() })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The private key as PKCS#8 PEM, to store (mode 0600) and read back with [`from_pem`](Self::from_pem).
    pub fn to_pem(&self) -> Zeroizing<String> {
        let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.pkcs8));
        let mut pem = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default()); // base64 is ASCII
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The private key as PKCS#8 DER: for the signer, and for a store that keeps keys (read
    /// back with [`from_pkcs8_der`](Self::from_pkcs8_der)). Never print or log it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The `p=` value: the public key in base64.
    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.public)
    }

    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN` (RFC 6376 §3.6.1):
    /// `v=DKIM1; k=rsa; p=…`. An RSA-2048 record is longer than one 255-octet string; the
    /// DNS server splits it into several, which verifiers join (RFC 6376 §3.6.2.2).
    pub fn dns_record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm.key_type(), self.public_base64())
    }

    /// The owner name of the record: `SELECTOR._domainkey.DOMAIN` (RFC 6376 §3.6.2.1).
    pub fn dns_name(selector: &str, domain: &str) -> String {
        format!("{selector}._domainkey.{}", domain.trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_round_trip_through_pem() {
        let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
        assert_eq!(key.public.len(), 32);
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
        let back = SigningKey::from_pem(&pem).unwrap();
        assert_eq!((back.algorithm(), back.public_base64()), (Algorithm::Ed25519Sha256, key.public_base64()));
        assert!(key.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(key.dns_record().len(), "v=DKIM1; k=ed25519; p=".len() + 44);
    }

    #[test]
    fn a_debug_print_shows_no_private_key() {
        let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
        let printed = format!("{key:?}");
        let secret = key.to_pem();
        let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!printed.contains(&body[..20]), "{printed}");
        assert!(printed.contains(&key.public_base64()));
    }

    #[test]
    fn garbage_and_ec_keys_are_refused_with_a_reason() {
        assert!(SigningKey::from_pem("not a key").unwrap_err().0.contains("PEM"));
        // A P-256 key from rcgen's test set would be SEC1/PKCS#8 EC: build one with ring.
        let ec = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let err = SigningKey::from_pkcs8_der(ec.as_ref()).unwrap_err();
        assert!(err.0.contains("neither an Ed25519 nor a usable RSA key"), "{err}");
    }

    #[test]
    fn record_names_follow_rfc_6376() {
        assert_eq!(SigningKey::dns_name("s2026", "example.org."), "s2026._domainkey.example.org");
    }
}
