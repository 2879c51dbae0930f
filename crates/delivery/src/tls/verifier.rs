//! The certificate verifier of an outbound connection: checks the chain the way the host's
//! policy says (PKIX for the MX name, or TLSA records), keeps the verdict for the attempt
//! record, and fails the handshake only when the policy requires authentication. The
//! handshake signatures are always checked against the certificate's key, whatever the
//! policy (the workspace's shared `HandshakeSignatures`): an unauthenticated session is still
//! one with the holder of that key.

use super::{dane, CertificateCheck, HostPolicy, TlsFailure, TrustRoots};
use portcullis_tls_client::HandshakeSignatures;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct PolicyVerifier {
    policy: HostPolicy,
    /// The reference identity: the MX host name (RFC 7672 §3.2.2, RFC 8461 §4.2), or the
    /// smart host's name.
    host: String,
    roots: TrustRoots,
    signatures: HandshakeSignatures,
    verdict: Mutex<CertificateCheck>,
}

impl PolicyVerifier {
    pub(crate) fn new(policy: HostPolicy, host: &str, roots: TrustRoots) -> PolicyVerifier {
        let signatures = HandshakeSignatures::of(&roots.provider);
        PolicyVerifier {
            policy,
            host: host.to_string(),
            roots,
            signatures,
            verdict: Mutex::new(CertificateCheck::NotChecked),
        }
    }

    /// The verdict on the certificate the server presented.
    pub fn verdict(&self) -> CertificateCheck {
        self.verdict.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn record(&self, check: CertificateCheck) {
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = check;
    }

    fn pkix(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), TlsFailure> {
        let name = ServerName::try_from(self.host.clone()).map_err(|_| TlsFailure::CertificateHostMismatch)?;
        self.roots.pkix.verify_server_cert(end_entity, intermediates, &name, &[], now).map(|_| ()).map_err(
            |e| match e {
                Error::InvalidCertificate(CertificateError::NotValidForName)
                | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
                    TlsFailure::CertificateHostMismatch
                }
                Error::InvalidCertificate(CertificateError::Expired)
                | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => TlsFailure::CertificateExpired,
                Error::InvalidCertificate(CertificateError::UnknownIssuer) => TlsFailure::CertificateNotTrusted,
                _ => TlsFailure::ValidationFailure,
            },
        )
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let result = match &self.policy {
            HostPolicy::Dane { records } => {
                dane::verify(records, end_entity, intermediates, &self.host, now, &self.roots.provider)
                    .map(|_| ())
                    .map_err(|_| TlsFailure::TlsaInvalid)
            }
            // A validated TLSA RRset with no usable record: TLS without authentication.
            HostPolicy::DaneUnusable => Err(TlsFailure::TlsaInvalid),
            HostPolicy::Opportunistic | HostPolicy::MtaSts { .. } | HostPolicy::Relay => {
                self.pkix(end_entity, intermediates, now)
            }
        };
        let enforced = matches!(
            self.policy,
            HostPolicy::Dane { .. } | HostPolicy::MtaSts { enforce: true, .. } | HostPolicy::Relay
        );
        match result {
            Ok(()) => {
                self.record(CertificateCheck::Valid);
                Ok(ServerCertVerified::assertion())
            }
            Err(failure) => {
                self.record(CertificateCheck::Invalid(failure));
                if enforced {
                    Err(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
                } else {
                    Ok(ServerCertVerified::assertion())
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}
