//! What the load generators share: the TLS client setup (ring provider) and the connect step
//! of implicit TLS (TCP, handshake), and how a step of a session fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_tls_client::AnyServerCertificate;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The TLS options of every load generator.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// Trust this PEM certificate (the server's own, or its CA)
    #[arg(long, value_name = "PEM", required_unless_present = "insecure")]
    pub ca: Option<PathBuf>,
    /// Accept any server certificate
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Name to verify the certificate against [default: the host of the address connected to]
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
}

/// Why a step failed. `Rejected` leaves the connection usable (the server answered);
/// `Broken` does not (I/O error, timeout, unparsable reply).
#[derive(Debug)]
pub enum Failure {
    Rejected(String),
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rejected(m) | Failure::Broken(m) => f.write_str(m),
        }
    }
}

/// A TLS client configuration that trusts `ca` (a PEM file), or any certificate when `ca` is
/// `None` (`--insecure`: the handshake signatures are still checked, so the TLS work each side
/// does is the same as with verification).
/// The ring provider is named explicitly (docs/dependencies.md pitfall 2).
pub fn tls_config(ca: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let config = match ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca {}: {e}", path.display()))? {
                let cert = cert.map_err(|e| format!("--ca {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("--ca {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca {}: no PEM certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(AnyServerCertificate::shared(&provider))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// TCP connect (Nagle off) and the TLS handshake, each bounded by `timeout`.
pub async fn connect(
    addr: std::net::SocketAddr,
    tls: TlsConnector,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, Failure> {
    let broken = |what: &str, e: &dyn std::fmt::Display| Failure::Broken(format!("{what}: {e}"));
    let tcp = tcp_connect(addr, None, timeout).await.map_err(|e| broken("connect", &e))?;
    tokio::time::timeout(timeout, tls.connect(name, tcp))
        .await
        .map_err(|e| broken("TLS handshake", &e))?
        .map_err(|e| broken("TLS handshake", &e))
}

/// TCP connect from `local` (any port; the system's choice of address when `None`) with
/// Nagle off, bounded by `timeout`. On loopback every address of 127.0.0.0/8 can be a source,
/// which is how the guard benchmark plays many clients.
pub async fn tcp_connect(
    addr: std::net::SocketAddr,
    local: Option<std::net::IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let connect = async {
        let tcp = match local {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        // Commands are small writes each waiting for a reply: Nagle would only add delay.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Where to connect and how: the address, the TLS client config and the name to verify.
#[derive(Clone)]
pub struct Target {
    pub addr: std::net::SocketAddr,
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
}

impl Target {
    /// `server` is HOST:PORT; `tls_name` defaults to its host; `ca` as in [`tls_config`].
    pub async fn resolve(server: &str, tls_name: Option<&str>, ca: Option<&std::path::Path>) -> Result<Target, String> {
        let addr = tokio::net::lookup_host(server)
            .await
            .map_err(|e| format!("--server {server}: {e}"))?
            .next()
            .ok_or_else(|| format!("--server {server}: no address"))?;
        let host = server.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(server);
        let name = tls_name.unwrap_or(host).to_string();
        let name = ServerName::try_from(name.clone()).map_err(|e| format!("--tls-name {name}: {e}"))?;
        Ok(Target { addr, connector: TlsConnector::from(tls_config(ca)?), name })
    }
}
