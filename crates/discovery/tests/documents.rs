//! The documents as a client gets them: a thin HTTPS listener (TLS, one HTTP/1.1 request per
//! connection, `Site::respond` for the answer: the shape the server's listener will have)
//! and Python as the client (tests/clients/discovery_client.py): Thunderbird's lookup order,
//! the autoconfig and autodiscover documents validated against their published formats, the
//! Apple profile parsed with plistlib, the MTA-STS policy read on its host. Certificates are
//! made at test time, for every name the client asks for, so the client verifies them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use portcullis_discovery::{LocalDomains, Ports, Request, ServerFacts, Site, MAX_BODY};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HOST: &str = "mail.example.org";
const DOMAINS: [&str; 2] = ["example.org", "second.example"];
/// Not a local domain, though its names point here and the certificate covers them.
const FOREIGN: &str = "other.example";

fn facts() -> ServerFacts {
    let ports = Ports {
        submissions: Some(465),
        submission: Some(587),
        imaps: Some(993),
        pop3s: Some(995),
        smtp: Some(25),
        https: Some(443),
    };
    ServerFacts::new(HOST, ports)
}

/// A CA and one certificate for the host and every discovery name of both domains.
fn certificates(dir: &Path) -> (rustls::ServerConfig, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "discovery test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut names = every_name();
    names.extend(names_of(FOREIGN));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let der_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .unwrap();
    (config, ca_file)
}

/// Reads one request (head and a body of at most MAX_BODY bytes), answers it, closes.
async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, site: Arc<Site>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let domains: Arc<Vec<String>> = Arc::new(DOMAINS.iter().map(|d| d.to_string()).collect());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (acceptor, site, domains) = (acceptor.clone(), site.clone(), domains.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if buf.len() > 16 * 1024 {
                    return;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or("").split_whitespace();
            let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            let header = |name: &str| {
                head.split("\r\n").skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(MAX_BODY + 1);
            while buf.len() < head_end + length {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = &buf[head_end..buf.len().min(head_end + length)];
            let host = header("host");
            let request = Request { host: host.as_deref(), method, target, body, tls: true };
            let response = site.respond(&request, domains.as_ref() as &dyn LocalDomains);
            let mut out = format!(
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                response.status,
                response.content_type,
                response.body.len()
            );
            for (name, value) in &response.headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("\r\n");
            let _ = tls.write_all(out.as_bytes()).await;
            let _ = tls.write_all(&response.body).await;
            let _ = tls.shutdown().await;
        });
    }
}

async fn client(email: &str, resolves: &[String]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = certificates(dir.path());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, Arc::new(tls), Arc::new(Site::new(facts()))));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/discovery_client.py");
    let (email, hosts) = (email.to_string(), resolves.join(","));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(script).arg(port.to_string()).arg(ca).arg(hosts).arg(email).output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap()
}

fn names_of(domain: &str) -> [String; 4] {
    [domain.to_string(), format!("autoconfig.{domain}"), format!("autodiscover.{domain}"), format!("mta-sts.{domain}")]
}

fn every_name() -> Vec<String> {
    let mut names = vec![HOST.to_string()];
    for d in DOMAINS {
        names.extend(names_of(d));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_discovers_tls_ports_only_and_every_document_is_valid() {
    let found = client("o'brien@example.org", &every_name()).await;
    // Thunderbird's first URL answers.
    let tb = &found["thunderbird"];
    assert_eq!(tb["url"], "https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=o%27brien%40example.org");
    let servers = tb["config"]["servers"].as_array().unwrap();
    let summary: Vec<(String, u64, String)> = servers
        .iter()
        .map(|s| {
            (s["type"].as_str().unwrap().into(), s["port"].as_u64().unwrap(), s["socket"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("imap".into(), 993, "SSL".into()),
            ("pop3".into(), 995, "SSL".into()),
            ("smtp".into(), 465, "SSL".into()),
            ("smtp".into(), 587, "STARTTLS".into())
        ]
    );
    assert!(servers.iter().all(|s| s["host"] == HOST && s["username"] == "%EMAILADDRESS%"));

    let protocols = found["autodiscover"]["document"]["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 4, "{found:#}");
    for p in protocols {
        assert_eq!(p["LoginName"], "o'brien@example.org");
        assert_eq!(p["SSL"], "on");
        assert_ne!(p["Port"], "25");
    }
    let starttls: Vec<&Value> = protocols.iter().filter(|p| p["Encryption"] == "TLS").collect();
    assert_eq!(starttls.len(), 1);
    assert_eq!(starttls[0]["Port"], "587");
    assert_eq!(found["autodiscover_mobilesync"]["document"]["error"], "601");

    let account = &found["mobileconfig"]["account"];
    assert_eq!(account["EmailAddress"], "o'brien@example.org");
    assert_eq!(account["IncomingMailServerPortNumber"], 993);
    assert_eq!(account["OutgoingMailServerPortNumber"], 465);
    assert_eq!(account["IncomingMailServerUseSSL"], true);
    assert_eq!(account["OutgoingMailServerUseSSL"], true);

    let policy = &found["mta_sts"];
    assert_eq!(policy["content_type"], "text/plain; charset=utf-8");
    let pairs: Vec<Vec<String>> = serde_json::from_value(policy["pairs"].clone()).unwrap();
    assert!(pairs.contains(&vec!["mode".into(), "enforce".into()]));
    assert!(pairs.contains(&vec!["mx".into(), HOST.into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thunderbird_falls_back_to_the_well_known_url_when_autoconfig_does_not_resolve() {
    let resolves: Vec<String> = every_name().into_iter().filter(|n| n != "autoconfig.second.example").collect();
    let found = client("bob@second.example", &resolves).await;
    let tb = &found["thunderbird"];
    assert_eq!(
        tb["url"],
        "https://second.example/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40second.example"
    );
    assert_eq!(tb["tried"].as_array().unwrap().len(), 1, "{tb:#}");
    assert_eq!(tb["config"]["domains"][0], "second.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_that_is_not_local_gets_nothing() {
    let mut names = every_name();
    names.extend(names_of(FOREIGN));
    let found = client(&format!("eve@{FOREIGN}"), &names).await;
    assert_eq!(found["thunderbird"]["url"], Value::Null);
    assert_eq!(found["thunderbird"]["tried"].as_array().unwrap().len(), 4, "{found:#}");
    assert_eq!(found["autodiscover"]["status"], 404);
    assert_eq!(found["mobileconfig"]["status"], 404);
    assert_eq!(found["mta_sts"]["status"], 404);
}
