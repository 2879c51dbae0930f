//! Real handshakes on loopback against [`AnyServerCertificate`]: a self-signed server is
//! accepted and its chain recorded; a server that signs the handshake with a key other than its
//! certificate's is refused, in TLS 1.2 and 1.3 (the part of verification that is never skipped).

use std::sync::Arc;

use portcullis_tls_client::AnyServerCertificate;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Always presents `cert` and signs with `key`, whether or not they belong together.
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesServerCert for Presents {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["server.test".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (made.cert.der().clone(), key)
}

/// A server on 127.0.0.1 that presents `cert`, signs with `key`, and echoes one byte.
async fn serve(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> std::net::SocketAddr {
    let provider = Arc::new(ring::default_provider());
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let resolver = Presents(Arc::new(CertifiedKey::new(vec![cert], signing)));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut byte = [0u8];
                    if tls.read_exact(&mut byte).await.is_ok() {
                        let _ = tls.write_all(&byte).await;
                    }
                }
            });
        }
    });
    addr
}

async fn connect(
    addr: std::net::SocketAddr,
    verifier: AnyServerCertificate,
    version: &'static SupportedProtocolVersion,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("another-name.test").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    // TLS 1.3 clients finish before the server has read their Finished: a round trip proves
    // the session was really set up.
    tls.write_all(b"x").await?;
    let mut byte = [0u8];
    tls.read_exact(&mut byte).await?;
    assert_eq!(&byte, b"x");
    Ok(tls)
}

#[tokio::test]
async fn a_self_signed_server_for_another_name_is_accepted_and_its_chain_recorded() {
    let (cert, key) = self_signed();
    let addr = serve(cert.clone(), key).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (verifier, seen) = AnyServerCertificate::recording(&ring::default_provider());
        connect(addr, verifier, version).await.unwrap();
        assert_eq!(seen.take(), vec![cert.clone()], "{version:?}");
        assert!(seen.take().is_empty(), "take leaves it empty");
    }
}

#[tokio::test]
async fn a_handshake_not_signed_by_the_certificates_key_is_refused() {
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let addr = serve(cert, other_key).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let error = connect(addr, AnyServerCertificate::new(&ring::default_provider()), version)
            .await
            .expect_err("a signature by another key must fail the handshake");
        assert!(error.to_string().to_lowercase().contains("signature"), "{version:?}: {error}");
    }
}
