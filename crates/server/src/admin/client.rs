//! The admin API as the CLI calls it (`portcullis status`, `portcullis ban …`): the first
//! `listen.admin` address (loopback when it is a wildcard), the token from the config or the
//! token file, TLS with the `[tls]` certificate trusted when `admin.tls` is on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_config::Config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub enum ClientError {
    /// Nothing answers at the admin address (the server is not running, or not there).
    Unreachable(String),
    /// It answered, but not as it should have.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(e) | ClientError::Failed(e) => f.write_str(e),
        }
    }
}

pub struct AdminClient {
    addr: SocketAddr,
    token: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl AdminClient {
    /// A client for the configured admin listener; `None` when `listen.admin` is not set.
    pub fn from_config(config: &Config) -> Result<Option<AdminClient>, String> {
        let Some(first) = config.listen.admin().first() else { return Ok(None) };
        let mut addr = *first;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let token = super::token::read_token(&config.admin.token)?;
        let tls = if config.admin.tls {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // The server's own certificate as a trust anchor too: a self-signed one works.
            let certs = CertificateDer::pem_file_iter(&config.tls.cert)
                .map_err(|e| format!("cannot read the certificate {}: {e}", config.tls.cert.display()))?;
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup failed: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(config.hostname.clone()).map_err(|e| format!("hostname: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(tls)), name))
        } else {
            None
        };
        Ok(Some(AdminClient { addr, token, tls }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One request; the status and the JSON answer (`null` when there is no body).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), ClientError> {
        let unreachable =
            |e: String| ClientError::Unreachable(format!("cannot reach the admin listener at {}: {e}", self.addr));
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("timed out".into())),
        };
        let io: Box<dyn Io> = match &self.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ClientError::Failed(format!("TLS with the admin listener failed: {e}")))?,
            ),
            None => Box::new(tcp),
        };
        let failed = |e: String| ClientError::Failed(format!("the admin API at {}: {e}", self.addr));
        let exchange = async {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| failed(e.to_string()))?;
            tokio::spawn(connection);
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.addr.to_string())
                .header("authorization", format!("Bearer {}", self.token))
                .header("content-type", "application/json")
                .header("user-agent", "portcullis-cli")
                .body(Full::new(Bytes::from(payload)))
                .map_err(|e| failed(e.to_string()))?;
            let response = sender.send_request(request).await.map_err(|e| failed(e.to_string()))?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.map_err(|e| failed(e.to_string()))?.to_bytes();
            let json = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            Ok((status, json))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.unwrap_or_else(|_| Err(failed("timed out".into())))
    }
}
