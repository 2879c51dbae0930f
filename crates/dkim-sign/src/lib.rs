//! DKIM signing for mail Portcullis sends (issue 14 prepares it; the outbound queue uses it):
//! make a key ([`SigningKey::generate`], RSA-2048 or Ed25519, PKCS#8 PEM to store), publish
//! it ([`SigningKey::dns_record`] at [`SigningKey::dns_name`]), and sign a message for a
//! domain and selector with mail-auth ([`Signer::sign`]), on ring only.
//!
//! What is signed: the header fields RFC 6376 §5.4.1 recommends, every one present, and
//! each named once more than it occurs ("oversigning", RFC 6376 §8.15), so that a field
//! added on the way (a second From:, a Reply-To:) breaks the signature instead of riding on
//! it. Relaxed/relaxed canonicalization (RFC 6376 §3.4), no `l=` (a signed prefix would let
//! anyone append to the body), no expiry (`x=`), so a slow queue cannot outlive its signature.
#![forbid(unsafe_code)]

mod key;

pub use key::{Algorithm, KeyError, SigningKey, RSA_BITS};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::DkimSigner;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::sync::OnceLock;

/// RFC 6376 §5.4.1's list, From first (it must be signed, §5.4).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Signing failed (the message has none of the headers to sign, or the key was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DKIM signing: {}", self.0)
    }
}

impl std::error::Error for SignError {}

/// Signs for one domain with one selector's key. The key is parsed for signing once, at the
/// first signature, and kept: reading an RSA key (ring checks it) costs far more than one
/// signature, so a server keeps its `Signer`s rather than making one per message.
pub struct Signer {
    key: SigningKey,
    domain: String,
    selector: String,
    parsed: OnceLock<Result<DkimKey, SignError>>,
}

impl Signer {
    pub fn new(key: SigningKey, domain: impl Into<String>, selector: impl Into<String>) -> Signer {
        Signer { key, domain: domain.into(), selector: selector.into(), parsed: OnceLock::new() }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The key as mail-auth signs with it, parsed on first use.
    fn parsed(&self) -> Result<&DkimKey, SignError> {
        let parsed = self.parsed.get_or_init(|| {
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.pkcs8_der().to_vec()));
            Ok(match self.key.algorithm() {
                Algorithm::RsaSha256 => RsaKey::from_key_der(der).map_err(|e| SignError(e.to_string()))?.into(),
                Algorithm::Ed25519Sha256 => Ed25519Key::from_pkcs8_maybe_unchecked_der(self.key.pkcs8_der())
                    .map_err(|e| SignError(e.to_string()))?
                    .into(),
            })
        });
        parsed.as_ref().map_err(Clone::clone)
    }

    /// The `DKIM-Signature: …\r\n` field for `message` (CRLF line endings, as sent), to be
    /// prepended to it unchanged.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignError> {
        // RFC 6376 §5.4: From is the one field a signature must cover.
        if !header_names(message).iter().any(|n| n.eq_ignore_ascii_case(b"From")) {
            return Err(SignError("the message has no From: field".into()));
        }
        let signature = DkimSigner::from_key(Borrowed(self.parsed()?))
            .domain(self.domain.as_str())
            .selector(self.selector.as_str())
            .headers(oversigned(message))
            .sign(message)
            .map_err(|e| SignError(e.to_string()))?;
        Ok(signature.to_header())
    }

    /// The message with its signature prepended.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let field = self.sign(message)?;
        let mut signed = Vec::with_capacity(field.len() + message.len());
        signed.extend_from_slice(field.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// The kept key lent to mail-auth's signer, which takes its key by value.
struct Borrowed<'a>(&'a DkimKey);

impl mail_auth::common::crypto::SigningKey for Borrowed<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// The `h=` list: each recommended field as many times as it occurs, plus once more. The
/// library signs every occurrence of a listed name and lists names it did not find as
/// absent, which is the extra entry oversigning needs.
fn oversigned(message: &[u8]) -> Vec<&'static str> {
    let names = header_names(message);
    let mut list = Vec::with_capacity(SIGNED_HEADERS.len() * 2);
    for &name in SIGNED_HEADERS {
        let present = names.iter().filter(|n| n.eq_ignore_ascii_case(name.as_bytes())).count();
        list.extend(std::iter::repeat_n(name, present + 1));
    }
    list
}

/// The names of the header fields (up to the empty line ending the header section).
fn header_names(message: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            continue; // a continuation line
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            names.push(line[..colon].trim_ascii());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_present_field_is_listed_once_more_than_it_occurs() {
        let message =
            b"From: a@example.org\r\nTo: b@example.net\r\nTo: c@example.net\r\nX-Other: 1\r\n\r\nFrom: body\r\n";
        let list = oversigned(message);
        assert_eq!(list.iter().filter(|n| **n == "From").count(), 2);
        assert_eq!(list.iter().filter(|n| **n == "To").count(), 3);
        assert_eq!(list.iter().filter(|n| **n == "Subject").count(), 1);
        assert!(!list.contains(&"X-Other"));
    }

    #[test]
    fn a_signature_field_is_produced_for_both_algorithms() {
        let message = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        for algorithm in [Algorithm::Ed25519Sha256, Algorithm::RsaSha256] {
            let signer = Signer::new(SigningKey::generate(algorithm).unwrap(), "example.org", "s1");
            let field = signer.sign(message).unwrap();
            assert!(field.starts_with("DKIM-Signature: "), "{field}");
            assert!(field.ends_with("\r\n"));
            assert!(field.contains(&format!("a={};", algorithm.as_str())), "{field}");
            assert!(field.contains("d=example.org;") && field.contains("s=s1;"), "{field}");
            assert!(!field.contains("l="), "no body length limit: {field}");
        }
    }

    #[test]
    fn a_kept_signer_signs_again_with_the_key_parsed_once() {
        let message = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        let signer = Signer::new(SigningKey::generate(Algorithm::RsaSha256).unwrap(), "example.org", "s1");
        assert!(signer.parsed.get().is_none());
        let first = signer.sign(message).unwrap();
        assert!(signer.parsed.get().is_some_and(Result::is_ok));
        let second = signer.sign(message).unwrap();
        for field in [first, second] {
            assert!(field.starts_with("DKIM-Signature: ") && field.contains("a=rsa-sha256;"), "{field}");
        }
    }

    #[test]
    fn a_message_without_from_is_refused() {
        let signer = Signer::new(SigningKey::generate(Algorithm::Ed25519Sha256).unwrap(), "example.org", "s1");
        let err = signer.sign(b"Subject: hi\r\n\r\nFrom: in the body\r\n").unwrap_err();
        assert!(err.0.contains("no From"), "{err}");
    }
}
