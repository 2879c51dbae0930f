//! Real TLS handshakes with rustls (ring provider, built explicitly: docs/dependencies.md pitfall 2),
//! as a modern client makes them.
//!
//! The verifier (the workspace's shared `AnyServerCertificate`, recording) keeps the server's
//! chain and lets the handshake finish whatever the chain is: the audit still has to look inside TLS (greeting, AUTH, MAIL FROM, STARTTLS
//! injection) on a server whose certificate is expired or self-signed, and the chain is judged
//! on its own, with the same rustls-webpki code a client uses, in `cert.rs`. Handshake
//! signatures are still checked, so a session we report on is a real one.

use std::sync::Arc;

use portcullis_tls_client::AnyServerCertificate;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::hello::{version_name, TLS12, TLS13};

/// What one handshake gave.
pub struct Session {
    pub stream: TlsStream<TcpStream>,
    pub version: u16,
    pub suite: String,
    pub chain: Vec<CertificateDer<'static>>,
}

impl Session {
    pub fn describe(&self) -> String {
        format!("{} {}", version_name(self.version), self.suite)
    }
}

/// A TLS 1.2/1.3 handshake over `tcp` as a modern client makes it.
pub async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
    timeout: std::time::Duration,
) -> Result<Session, String> {
    let provider = Arc::new(ring::default_provider());
    let (recorder, presented) = AnyServerCertificate::recording(&provider);
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(recorder))
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let stream = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => return Err("the TLS handshake timed out".into()),
        Ok(Err(e)) => return Err(format!("the TLS handshake failed: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let conn = stream.get_ref().1;
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => TLS13,
        _ => TLS12,
    };
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    let chain = presented.take();
    Ok(Session { stream, version, suite, chain })
}
