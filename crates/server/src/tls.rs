//! TLS policy, in one place: TLS 1.2 and 1.3 only (rustls implements nothing older), AEAD
//! suites with ephemeral ECDHE only, our preference order, certificate and key from PEM files,
//! swappable at run time (SIGHUP) without touching sessions already established.

use std::path::Path;
use std::sync::{Arc, RwLock};

use portcullis_config::TlsVersion;
use rustls::crypto::ring::{self, cipher_suite as cs, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every suite offered: all AEAD (GCM, ChaCha20-Poly1305), all with forward secrecy (TLS 1.3,
/// or ECDHE in TLS 1.2). Strongest first; the server's order wins.
const CIPHER_SUITES: &[rustls::SupportedCipherSuite] = &[
    cs::TLS13_AES_256_GCM_SHA384,
    cs::TLS13_CHACHA20_POLY1305_SHA256,
    cs::TLS13_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// The ring provider restricted to our suites. Built explicitly: with a second provider
/// compiled in, rustls' process default would panic (docs/dependencies.md pitfall 2).
fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..ring::default_provider()
    }
}

/// Builds a server configuration from the files named in `[tls]`.
pub fn load(cert: &Path, key: &Path, min_version: TlsVersion) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    config.ignore_client_order = true;
    // TLS 1.2 only with the extended master secret (RFC 7627): without it a man in the middle
    // can make two connections share keys (the triple handshake attack), and the
    // `tls-exporter` channel binding that SCRAM-SHA-256-PLUS relies on would be worthless
    // (RFC 9266 section 3). Every TLS 1.2 client of the last decade offers it.
    config.require_ems = true;
    Ok(config)
}

/// The `tls-exporter` channel binding of a connection (RFC 9266): 32 bytes of keying material
/// that only the two ends of this TLS session can compute, for SCRAM-SHA-256-PLUS. No context
/// value, as OpenSSL, Go and GnuTLS clients compute it (the same as an empty one in TLS 1.3).
pub fn channel_binding(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    let mut binding = vec![0u8; 32];
    conn.export_keying_material(&mut binding, b"EXPORTER-Channel-Binding", None).ok()?;
    Some(binding)
}

/// The current TLS configuration; new connections take a snapshot, so replacing it leaves
/// established sessions alone.
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn new(config: ServerConfig) -> Tls {
        Tls { current: RwLock::new(Arc::new(config)) }
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self.current.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone());
        tokio_rustls::TlsAcceptor::from(config)
    }

    pub fn replace(&self, config: ServerConfig) {
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384", for logs and Received headers.
pub fn describe(conn: &rustls::ServerConnection) -> (String, String) {
    let version = conn
        .protocol_version()
        .map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default();
    let cipher = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    (version, cipher)
}
