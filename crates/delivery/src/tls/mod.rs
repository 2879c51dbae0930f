//! Transport security of one connection: which policy applies to a host (none, MTA-STS
//! testing or enforce, DANE, a smart host), the rustls client configuration it needs (TLS
//! 1.2 and 1.3 only, the ring provider: docs/dependencies.md pitfall 2), and a certificate
//! verifier that checks what the policy asks, records the verdict for the attempt record and
//! TLS-RPT, and refuses the handshake only when the policy says so.

pub mod dane;
mod verifier;

pub use verifier::PolicyVerifier;

use portcullis_dns::Tlsa;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// The TLS policy of one exchanger, from DANE (RFC 7672), MTA-STS (RFC 8461), or the smart
/// host configuration. DANE takes precedence over MTA-STS (RFC 8461 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// No policy: STARTTLS when offered, any certificate accepted (RFC 7435), the verdict
    /// recorded.
    Opportunistic,
    /// MTA-STS for `domain`: `enforce` means TLS with a certificate valid for the MX name, or
    /// no delivery; `testing` only reports.
    MtaSts { domain: String, enforce: bool },
    /// DANE: TLS, and a chain matching one of these usable TLSA records.
    Dane { records: Vec<Tlsa> },
    /// A DNSSEC-validated TLSA RRset without a usable record (RFC 7672 §2.2: TLS is still
    /// mandatory, without authentication).
    DaneUnusable,
    /// The smart host: TLS with a certificate valid for its name.
    Relay,
}

/// The kind of policy, for records and TLS-RPT (RFC 8460 §4.4 policy-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    None,
    MtaStsTesting,
    MtaStsEnforce,
    Dane,
    Relay,
}

/// What came of checking the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict", content = "reason")]
pub enum CertificateCheck {
    /// No TLS, or no certificate seen.
    NotChecked,
    /// Valid for the policy (PKIX for the MX name, or a TLSA match).
    Valid,
    Invalid(TlsFailure),
}

/// RFC 8460 §4.3 result types: why TLS failed, in the words a TLS report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsFailure {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl HostPolicy {
    pub fn kind(&self) -> PolicyKind {
        match self {
            HostPolicy::Opportunistic => PolicyKind::None,
            HostPolicy::MtaSts { enforce: false, .. } => PolicyKind::MtaStsTesting,
            HostPolicy::MtaSts { enforce: true, .. } => PolicyKind::MtaStsEnforce,
            HostPolicy::Dane { .. } | HostPolicy::DaneUnusable => PolicyKind::Dane,
            HostPolicy::Relay => PolicyKind::Relay,
        }
    }

    /// Whether the session must have TLS (no plaintext delivery, ever).
    pub fn requires_tls(&self) -> bool {
        !matches!(self, HostPolicy::Opportunistic | HostPolicy::MtaSts { enforce: false, .. })
    }

    /// Whether a valid certificate under this policy authenticates the server in the sense
    /// of REQUIRETLS (RFC 8689 §4.2.1: the MX validated by DNSSEC or MTA-STS, the
    /// certificate by DANE or PKIX; an MTA-STS policy in testing mode counts as enforced
    /// for such a message).
    pub fn authenticates(&self) -> bool {
        matches!(self, HostPolicy::MtaSts { .. } | HostPolicy::Dane { .. } | HostPolicy::Relay)
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&text)
    }
}

/// The trust anchors for PKIX checks: the Mozilla roots of webpki-roots, plus any the
/// operator (or a test) adds.
#[derive(Clone)]
pub struct TrustRoots {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) pkix: Arc<WebPkiServerVerifier>,
    pub(crate) store: Arc<RootCertStore>,
}

impl fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustRoots({} anchors)", self.store.len())
    }
}

impl TrustRoots {
    /// webpki-roots and `extra` (DER certificates; a test CA, or a private CA of the
    /// operator's smart host).
    pub fn new(extra: &[CertificateDer<'static>]) -> Result<TrustRoots, String> {
        let mut store = RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra {
            store.add(cert.clone()).map_err(|e| format!("a trust anchor is not usable: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let store = Arc::new(store);
        let pkix = WebPkiServerVerifier::builder_with_provider(store.clone(), provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TrustRoots { provider, pkix, store })
    }

    /// A rustls client configuration whose verifier enforces `policy` for `host`; the
    /// verifier is returned too, to read its verdict after the handshake.
    pub fn client_config(&self, policy: &HostPolicy, host: &str) -> (Arc<ClientConfig>, Arc<PolicyVerifier>) {
        let verifier = Arc::new(PolicyVerifier::new(policy.clone(), host, self.clone()));
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map(|b| b.dangerous().with_custom_certificate_verifier(verifier.clone()).with_no_client_auth())
            .expect("the ring provider supports TLS 1.2 and 1.3");
        (Arc::new(config), verifier)
    }

    /// A configuration for HTTPS (MTA-STS policies): ordinary PKIX, nothing relaxed.
    pub fn https_config(&self) -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map(|b| b.with_webpki_verifier(self.pkix.clone()).with_no_client_auth())
            .expect("the ring provider supports TLS 1.2 and 1.3");
        Arc::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::TlsFailure;

    #[test]
    fn failures_are_named_as_rfc_8460_result_types() {
        assert_eq!(TlsFailure::StarttlsNotSupported.to_string(), "starttls-not-supported");
    }
}
