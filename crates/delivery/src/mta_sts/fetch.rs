//! Fetching a domain's MTA-STS policy (RFC 8461 §3.3): HTTPS to `mta-sts.DOMAIN`, resolved by
//! the server's own resolver, certificate checked by PKIX for that name, `GET
//! /.well-known/mta-sts.txt`, status 200 only (redirects are not followed), a text/plain body
//! of bounded size, all within one deadline. HTTP/1.1 through hyper's connection API, so the
//! name goes through `portcullis-dns` rather than the system's resolver.

use crate::tls::TrustRoots;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_dns::Resolver;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A policy file larger than this is refused (RFC 8461 §3.3 suggests senders bound it; 64 KiB
/// holds thousands of mx lines).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Fetches the policy text of `domain` (the host is `mta-sts.` + domain, §3.3).
pub async fn fetch(
    resolver: &Resolver,
    roots: &TrustRoots,
    domain: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, String> {
    match tokio::time::timeout(timeout, fetch_inner(resolver, roots, domain, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!("fetching the MTA-STS policy of {domain} took longer than {timeout:?}")),
    }
}

async fn fetch_inner(resolver: &Resolver, roots: &TrustRoots, domain: &str, port: u16) -> Result<String, String> {
    let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
    let addrs = resolver.ip_addrs(&host).await.map_err(|e| format!("{host}: {e}"))?;
    let mut last = format!("{host}: no address");
    let mut stream = None;
    for ip in addrs {
        match TcpStream::connect(SocketAddr::new(ip, port)).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{host} ({ip}): {e}"),
        }
    }
    let stream = stream.ok_or(last)?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let tls = TlsConnector::from(roots.https_config())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| format!("HTTP with {host}: {e}"))?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header("host", &host)
        .header("user-agent", "Portcullis")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP with {host}: {e}"))?;
    let result = read_policy(&host, response).await;
    connection.abort();
    result
}

async fn read_policy(host: &str, response: hyper::Response<hyper::body::Incoming>) -> Result<String, String> {
    // §3.3: "HTTP 3xx redirects MUST NOT be followed"; anything but 200 is no policy.
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("{host} answered HTTP {}", response.status()));
    }
    // §3.2: the media type is text/plain (parameters such as charset allowed).
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.split(';').next().map(str::trim) != Some("text/plain") {
        return Err(format!("{host} sent the policy as {content_type:?}, not text/plain"));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the policy from {host}: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| format!("the policy from {host} is not UTF-8"))
}
