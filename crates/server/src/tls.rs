//! TLS policy, in one place: TLS 1.2 and 1.3 only (rustls implements nothing older), AEAD
//! suites with ephemeral ECDHE only, our preference order, certificate and key from PEM files,
//! swappable at run time (SIGHUP) without touching sessions already established.
//!
//! Several certificates (one per domain, or one from ACME beside the configured one) are
//! chosen by the name the client asks for (SNI, RFC 6066 §3) through [`SniResolver`]: the
//! first certificate valid for that name, by the same rules a client checks it with
//! (webpki's name matching, wildcards included), else the default, the host name's.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use portcullis_config::TlsVersion;
use rustls::crypto::ring::{self, cipher_suite as cs, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};

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

/// A certificate chain and its private key, as PEM files (they may be one file holding both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Builds a server configuration that presents `default` unless the client asks (SNI) for a
/// name one of `others` is valid for; the resolver is returned so that a certificate can be
/// swapped in later (ACME) without a new configuration.
pub fn load_with_sni(
    default: &CertFiles,
    others: &[CertFiles],
    min_version: TlsVersion,
) -> Result<(ServerConfig, Arc<SniResolver>), String> {
    let resolver = Arc::new(SniResolver::new(Arc::new(certified_key(default)?)));
    for files in others {
        resolver.set(&files.cert.display().to_string(), Arc::new(certified_key(files)?));
    }
    Ok((server_config(resolver.clone(), min_version)?, resolver))
}

/// Reads a chain and its key and checks that they fit.
pub fn certified_key(files: &CertFiles) -> Result<CertifiedKey, String> {
    let (cert, key) = (&files.cert, &files.key);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let signing = ring::sign::any_supported_type(&key)
        .map_err(|e| format!("the private key {} is not usable: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    Ok(certified)
}

/// The policy of this file around any certificate choice: `resolver` picks the certificate
/// (an [`SniResolver`], or the ACME challenge resolver in front of one on the HTTPS listener).
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>, min_version: TlsVersion) -> Result<ServerConfig, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.ignore_client_order = true;
    // TLS 1.2 only with the extended master secret (RFC 7627): without it a man in the middle
    // can make two connections share keys (the triple handshake attack), and the
    // `tls-exporter` channel binding that SCRAM-SHA-256-PLUS relies on would be worthless
    // (RFC 9266 section 3). Every TLS 1.2 client of the last decade offers it.
    config.require_ems = true;
    Ok(config)
}

/// Certificates chosen by server name. Entries are labelled (a file path, "acme") so that
/// one can be replaced in place; the newest label is tried first, the default last.
#[derive(Debug)]
pub struct SniResolver {
    current: RwLock<Arc<Choice>>,
}

#[derive(Debug, Clone)]
struct Choice {
    default: Arc<CertifiedKey>,
    by_label: Vec<(String, Arc<CertifiedKey>)>,
}

impl SniResolver {
    pub fn new(default: Arc<CertifiedKey>) -> SniResolver {
        SniResolver { current: RwLock::new(Arc::new(Choice { default, by_label: Vec::new() })) }
    }

    /// Replaces the certificate labelled `label`, or adds it in front of the others.
    pub fn set(&self, label: &str, key: Arc<CertifiedKey>) {
        self.update(|choice| match choice.by_label.iter_mut().find(|(l, _)| l == label) {
            Some(entry) => entry.1 = key,
            None => choice.by_label.insert(0, (label.to_string(), key)),
        });
    }

    /// Replaces the default certificate (SIGHUP re-reading `[tls]`), keeping the others.
    pub fn set_default(&self, key: Arc<CertifiedKey>) {
        self.update(|choice| choice.default = key);
    }

    /// The certificate for a client that asked for `server_name` (or for none).
    pub fn choose(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let choice = self.current.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone());
        let wanted = server_name.and_then(|n| DnsName::try_from(n.to_string()).ok()).map(ServerName::DnsName);
        if let Some(name) = wanted {
            for (_, key) in &choice.by_label {
                if valid_for(key, &name) {
                    return key.clone();
                }
            }
        }
        choice.default.clone()
    }

    fn update(&self, change: impl FnOnce(&mut Choice)) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        change(&mut next);
        *guard = Arc::new(next);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.server_name()))
    }
}

/// Whether `key`'s end-entity certificate covers `name`, as a client would judge it.
fn valid_for(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.end_entity_cert()
        .ok()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
        .is_some_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// The `tls-exporter` channel binding of a connection (RFC 9266): 32 bytes of keying material
/// that only the two ends of this TLS session can compute, for SCRAM-SHA-256-PLUS. No context
/// value, as OpenSSL, Go and GnuTLS clients compute it (the same as an empty one in TLS 1.3).
pub fn channel_binding(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    let mut binding = vec![0u8; 32];
    conn.export_keying_material(&mut binding, b"EXPORTER-Channel-Binding", None).ok()?;
    Some(binding)
}

/// The TLS configuration of every listener. Its certificates are chosen by [`SniResolver`],
/// which SIGHUP and the ACME manager update in place: a new handshake gets the new
/// certificate, an established session keeps the one it negotiated.
pub struct Tls {
    config: Arc<ServerConfig>,
    sni: Arc<SniResolver>,
}

impl Tls {
    /// The configuration of the `[tls]` files, the certificate chosen by SNI.
    pub fn load(default: &CertFiles, min_version: TlsVersion) -> Result<Tls, String> {
        let (config, sni) = load_with_sni(default, &[], min_version)?;
        Ok(Tls { config: Arc::new(config), sni })
    }

    /// The certificate choice every listener shares.
    pub fn sni(&self) -> &Arc<SniResolver> {
        &self.sni
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A self-signed certificate for `names`, written as two PEM files in `dir`.
    fn files(dir: &Path, label: &str, names: &[&str]) -> CertFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let files = CertFiles { cert: dir.join(format!("{label}.crt")), key: dir.join(format!("{label}.key")) };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    fn file_leaf(files: &CertFiles) -> Vec<u8> {
        CertificateDer::pem_file_iter(&files.cert).unwrap().next().unwrap().unwrap().to_vec()
    }

    #[test]
    fn the_certificate_is_chosen_by_server_name_with_the_default_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let default = files(dir.path(), "host", &["mail.example.org"]);
        let one = files(dir.path(), "one", &["autoconfig.example.org", "mta-sts.example.org"]);
        let wild = files(dir.path(), "wild", &["*.example.net"]);
        let (_, sni) = load_with_sni(&default, &[one.clone(), wild.clone()], TlsVersion::V1_2).unwrap();
        assert_eq!(leaf(&sni.choose(Some("mta-sts.example.org"))), file_leaf(&one));
        assert_eq!(leaf(&sni.choose(Some("AUTOCONFIG.example.org"))), file_leaf(&one));
        assert_eq!(leaf(&sni.choose(Some("imap.example.net"))), file_leaf(&wild));
        assert_eq!(leaf(&sni.choose(Some("mail.example.org"))), file_leaf(&default));
        assert_eq!(leaf(&sni.choose(Some("unknown.example.com"))), file_leaf(&default));
        assert_eq!(leaf(&sni.choose(None)), file_leaf(&default));
        assert_eq!(leaf(&sni.choose(Some("not a name"))), file_leaf(&default));
    }

    #[test]
    fn a_labelled_certificate_is_replaced_in_place_and_a_new_one_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let default = files(dir.path(), "host", &["mail.example.org"]);
        let (_, sni) = load_with_sni(&default, &[], TlsVersion::V1_2).unwrap();
        let first = Arc::new(certified_key(&files(dir.path(), "a1", &["mail.example.org"])).unwrap());
        sni.set("acme", first.clone());
        assert_eq!(
            leaf(&sni.choose(Some("mail.example.org"))),
            leaf(&first),
            "a new label is tried before the default"
        );
        let renewed = Arc::new(certified_key(&files(dir.path(), "a2", &["mail.example.org"])).unwrap());
        sni.set("acme", renewed.clone());
        assert_eq!(leaf(&sni.choose(Some("mail.example.org"))), leaf(&renewed));
        assert_eq!(sni.current.read().unwrap().by_label.len(), 1);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = files(dir.path(), "a", &["a.example"]);
        let b = files(dir.path(), "b", &["b.example"]);
        let mixed = CertFiles { cert: a.cert.clone(), key: b.key.clone() };
        let err = load_with_sni(&a, &[mixed], TlsVersion::V1_2).unwrap_err();
        assert!(err.contains("do not fit"), "{err}");
        let missing = CertFiles { cert: dir.path().join("none.crt"), key: a.key.clone() };
        assert!(certified_key(&missing).unwrap_err().contains("none.crt"));
    }

    #[tokio::test]
    async fn a_handshake_gets_the_certificate_for_the_name_it_sent() {
        let dir = tempfile::tempdir().unwrap();
        let default = files(dir.path(), "host", &["mail.example.org"]);
        let other = files(dir.path(), "other", &["mail.example.net"]);
        let (config, _) = load_with_sni(&default, std::slice::from_ref(&other), TlsVersion::V1_2).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        for (name, expected) in [("mail.example.net", &other), ("mail.example.org", &default)] {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(file_leaf(expected))).unwrap();
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server = tokio::spawn({
                let acceptor = acceptor.clone();
                async move { acceptor.accept(server_io).await.map(|_| ()) }
            });
            let server_name = ServerName::try_from(name.to_string()).unwrap();
            let tls =
                connector.connect(server_name, client_io).await.expect("the client verifies the chosen certificate");
            assert_eq!(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec(), file_leaf(expected));
            server.await.unwrap().unwrap();
        }
    }
}
