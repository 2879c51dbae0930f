//! TLS to the database with rustls (ring only), as the URL's `sslmode` asks, with libpq's
//! meanings: `disable` (never), `prefer` (when the server offers it, unverified; the default),
//! `require` (always, unverified: it encrypts but does not authenticate the server), `verify-ca`
//! and `verify-full` (always, the certificate checked against the webpki roots or the
//! `sslrootcert=` file; rustls always checks the name too, so both behave as `verify-full`).
//!
//! Our own `MakeTlsConnect` adaptor rather than tokio-postgres-rustls: that crate builds its
//! connector on rustls's default features, which compile in aws-lc-rs beside ring
//! (docs/dependencies.md pitfall 2); the adaptor is a screenful.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use portcullis_store::StoreError;
use portcullis_tls_client::AnyServerCertificate;

/// What the URL's `sslmode` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode, StoreError> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "prefer" | "allow" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            // rustls cannot check a chain without its name: verify-ca is verify-full.
            "verify-ca" | "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(StoreError::Backend(format!("unknown sslmode {other:?} in the database URL"))),
        }
    }

    /// How tokio-postgres negotiates: whether it asks for TLS and whether it insists.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// The connector handed to tokio-postgres (and so to the pool): one rustls client config for
/// every connection.
#[derive(Clone)]
pub struct RustlsConnector {
    config: Arc<ClientConfig>,
}

impl RustlsConnector {
    /// A connector for `mode`; `root_cert` (a PEM file) replaces the webpki roots for
    /// `verify-full`.
    pub fn new(mode: SslMode, root_cert: Option<PathBuf>) -> Result<RustlsConnector, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("TLS to the database: {e}")))?;
        let config = match mode {
            SslMode::VerifyFull => {
                let mut roots = RootCertStore::empty();
                match root_cert {
                    Some(path) => {
                        for cert in CertificateDer::pem_file_iter(&path)
                            .map_err(|e| StoreError::Backend(format!("sslrootcert {}: {e}", path.display())))?
                        {
                            let cert =
                                cert.map_err(|e| StoreError::Backend(format!("sslrootcert {}: {e}", path.display())))?;
                            roots
                                .add(cert)
                                .map_err(|e| StoreError::Backend(format!("sslrootcert {}: {e}", path.display())))?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            // libpq's `prefer` and `require` do not authenticate the server; the handshake's
            // signatures are still checked, so the session is encrypted to whoever answered.
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(AnyServerCertificate::shared(&provider))
                .with_no_client_auth(),
        };
        Ok(RustlsConnector { config: Arc::new(config) })
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<RustlsConnect> {
        // tokio-postgres asks for a connector before every connection, whatever the sslmode,
        // and names a Unix socket's host "": PostgreSQL offers no TLS on its sockets, so such
        // a connector is never used unless sslmode insists (and then fails with a reason).
        if host.is_empty() {
            return Ok(RustlsConnect { config: self.config.clone(), name: None });
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("database host {host:?}: {e}")))?;
        Ok(RustlsConnect { config: self.config.clone(), name: Some(name) })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    /// `None` for a Unix socket.
    name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(io::ErrorKind::Unsupported, "no TLS on a Unix socket: use sslmode=disable or prefer")
            })?;
            Ok(RustlsStream(connector.connect(name, stream).await?))
        })
    }
}

/// A TLS session to the database (a newtype: tokio-postgres's `TlsStream` is foreign).
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No SCRAM channel binding (`tls-server-end-point` would need the certificate's signature
    /// hash): with `verify-full` the certificate check already ties the session to the server.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
