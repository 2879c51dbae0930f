//! The HTTPS client that talks to the CA, built here rather than by instant-acme so that its
//! TLS uses the ring provider explicitly (docs/dependencies.md pitfall 2: with a second
//! provider compiled in, rustls' process default panics) and trusts the public roots plus any
//! CA the settings add (a private CA, or pebble's test CA).

use std::sync::Arc;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, HttpClient};
use rustls_pki_types::CertificateDer;

pub(crate) fn http_client(extra_roots: &[CertificateDer<'static>]) -> Result<Box<dyn HttpClient>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots.add(root.clone()).map_err(|e| format!("an extra CA certificate is unusable: {e}"))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    let client: Client<_, BodyWrapper<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(client))
}
