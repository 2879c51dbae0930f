//! The one "accept any server certificate" verifier of the workspace, and the handshake
//! signature checks every client verifier here shares.
//!
//! Several clients must finish a TLS handshake with a server whose chain they do not (or cannot)
//! authenticate: the PostgreSQL connection in `sslmode=prefer`/`require`, the port auditor
//! (which judges the chain on its own, after the handshake), the load generators' `--insecure`,
//! and outbound delivery's opportunistic TLS. Written once here, so that none of them can forget
//! the part that must not be skipped: the handshake signatures are verified against the key in
//! the presented certificate with the provider's algorithms. Only the chain (issuer, name, dates)
//! goes unchecked, so the session is encrypted to whoever holds that key, not to a known server.
//!
//! A crate of its own (rustls only) because its users are leaves of different trees: the store
//! backend, the auditor and the benchmarks must not depend on the delivery crate or each other.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The handshake-signature half of a [`ServerCertVerifier`]: checks that the server signed the
/// handshake (TLS 1.2 ServerKeyExchange, RFC 5246 §7.4.3; TLS 1.3 CertificateVerify, RFC 8446
/// §4.4.3) with the key of the certificate it presented, using the provider's algorithms.
/// Verifiers that decide about the chain themselves delegate these three methods to it.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeSignatures(WebPkiSupportedAlgorithms);

impl HandshakeSignatures {
    /// The signature algorithms `provider` supports (ring's, in this workspace).
    pub fn of(provider: &CryptoProvider) -> HandshakeSignatures {
        HandshakeSignatures(provider.signature_verification_algorithms)
    }

    /// [`ServerCertVerifier::verify_tls12_signature`].
    pub fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    /// [`ServerCertVerifier::verify_tls13_signature`].
    pub fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    /// [`ServerCertVerifier::supported_verify_schemes`].
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Accepts any certificate chain (unknown issuer, wrong name, expired, self-signed) and still
/// verifies the handshake signatures against the presented certificate's key.
///
/// When skipping the chain is right: when the goal is encryption against passive listeners
/// only, or when the chain is judged elsewhere. It does not stop an active attacker, who can
/// present a certificate of their own. That is libpq's `sslmode=require` (and `prefer`): encrypt,
/// do not authenticate the server. It is opportunistic SMTP TLS without a policy (RFC 7435),
/// a load generator's `--insecure` (the TLS work is the same as with verification), and an
/// auditor that must look inside TLS on a server with a broken chain and reports the chain
/// itself. Wherever the peer must be known to be the right server, use a root store instead.
#[derive(Debug)]
pub struct AnyServerCertificate {
    signatures: HandshakeSignatures,
    /// Where the last presented chain is kept, when asked for with [`Self::recording`].
    seen: Option<PresentedChain>,
}

impl AnyServerCertificate {
    /// A verifier that accepts any chain; `provider` gives the signature algorithms.
    pub fn new(provider: &CryptoProvider) -> AnyServerCertificate {
        AnyServerCertificate { signatures: HandshakeSignatures::of(provider), seen: None }
    }

    /// As [`Self::new`], and keeps the chain each handshake presents (end entity first) in the
    /// returned [`PresentedChain`], for a caller that judges it after the handshake.
    pub fn recording(provider: &CryptoProvider) -> (AnyServerCertificate, PresentedChain) {
        let seen = PresentedChain::default();
        (AnyServerCertificate { signatures: HandshakeSignatures::of(provider), seen: Some(seen.clone()) }, seen)
    }

    /// The verifier behind an `Arc`, as `with_custom_certificate_verifier` takes it.
    pub fn shared(provider: &CryptoProvider) -> Arc<AnyServerCertificate> {
        Arc::new(AnyServerCertificate::new(provider))
    }
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(seen) = &self.seen {
            let mut chain = vec![end_entity.clone().into_owned()];
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
            seen.put(chain);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// The chain a server presented to a recording [`AnyServerCertificate`], end entity first.
#[derive(Debug, Clone, Default)]
pub struct PresentedChain(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl PresentedChain {
    /// The last chain presented, leaving this empty (empty if no handshake got that far).
    pub fn take(&self) -> Vec<CertificateDer<'static>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn put(&self, chain: Vec<CertificateDer<'static>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = chain;
    }
}
