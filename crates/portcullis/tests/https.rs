//! The HTTPS listener (`listen.https`) and ACME through the real server process:
//! - a mail client's Python stand-in (crates/discovery/tests/clients/discovery_client.py)
//!   fetches every document in Thunderbird's order, Outlook's and Apple's, and validates them;
//! - bad input gets clear HTTP errors and costs bounded memory and time: oversized heads and
//!   bodies, a client that never finishes its head, unknown paths and domains, plain HTTP on
//!   the TLS port; the guard's connection limits, bans and firewall apply as on every listener;
//! - with pebble (Debian's ACME test CA) as `[tls] acme`: a certificate issued by TLS-ALPN-01
//!   on the server's own HTTPS listener is served on 993 and 465, renewed on a shortened
//!   lifetime and swapped while an IMAP session stays open; a CA that refuses leaves the old
//!   certificate in service and raises an alert.
//!
//! Pebble and python3 are needed; without them the tests that use them say SKIPPED (and fail
//! under PORTCULLIS_REQUIRE_ALL=1, as every suite here does).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Settings, TestServer, ALICE, DOMAIN, HOSTNAME};
use portcullis_testpebble::{self as testpebble, free_port, DirectoryCa, Options, Pebble};
use portcullis_tls_client::AnyServerCertificate;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

fn https_settings() -> Settings {
    Settings { listen: vec!["https = [\"127.0.0.1:0\"]".into()], ..Settings::default() }
}

/// Every name a client of DOMAIN asks for.
fn every_name() -> Vec<String> {
    vec![
        HOSTNAME.to_string(),
        DOMAIN.to_string(),
        format!("autoconfig.{DOMAIN}"),
        format!("autodiscover.{DOMAIN}"),
        format!("mta-sts.{DOMAIN}"),
    ]
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to `addr` for `name`.
fn tls_to(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut conn = ClientConnection::new(config, ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    StreamOwned::new(conn, tcp)
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response (a head and a Content-Length body) off `stream`; `None` when the
/// connection closed first.
fn read_answer(stream: &mut impl Read) -> Option<Answer> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(Answer { status, head, body: String::from_utf8_lossy(&body).into_owned() })
}

/// One request over a new TLS connection to the HTTPS listener (SNI: the host name).
fn ask(server: &TestServer, request: &[u8]) -> Answer {
    let mut tls = tls_to(server.addr("https"), HOSTNAME, server.client_config(rustls::ALL_VERSIONS));
    tls.write_all(request).unwrap();
    tls.flush().unwrap();
    read_answer(&mut tls).expect("an HTTP answer")
}

fn get(server: &TestServer, host: &str, target: &str) -> Answer {
    ask(server, format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// A CA, and a certificate from it for every name clients of DOMAIN ask for, installed as the
/// server's `[tls]` files and loaded by SIGHUP. The CA's PEM file, for clients.
fn certificate_for_every_name(server: &TestServer) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "https test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(every_name()).unwrap().signed_by(&key, &issuer).unwrap();
    let dir = server.dir.path();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let before = server.events().iter().filter(|e| e["event"] == "config_reloaded" && e["what"] == "tls").count();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let reloads = server.wait_events(|e| e["event"] == "config_reloaded" && e["what"] == "tls", before + 1);
    assert_eq!(reloads.last().unwrap()["ok"], true, "{reloads:?}");
    ca_file
}

fn python3() -> Option<&'static str> {
    if Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("python3");
    }
    let require_all = std::env::var("PORTCULLIS_REQUIRE_ALL").is_ok_and(|v| v == "1");
    assert!(!require_all, "python3 is missing and PORTCULLIS_REQUIRE_ALL=1");
    eprintln!("\nSKIPPED: python3 is missing; this test tested nothing");
    None
}

#[test]
fn a_mail_client_discovers_the_servers_tls_ports_from_the_https_listener() {
    let Some(python) = python3() else { return };
    let server = TestServer::start_with(https_settings());
    let ca = certificate_for_every_name(&server);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../discovery/tests/clients/discovery_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(server.addr("https").port().to_string())
        .arg(&ca)
        .arg(every_name().join(","))
        .arg(ALICE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let found: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    // Thunderbird's first URL answers, with the ports the server really listens on.
    let tb = &found["thunderbird"];
    assert_eq!(tb["url"], format!("https://autoconfig.{DOMAIN}/mail/config-v1.1.xml?emailaddress=alice%40{DOMAIN}"));
    let port = |listener: &str| server.addr(listener).port() as u64;
    let servers: Vec<(String, u64, String)> = tb["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["type"].as_str().unwrap().into(), s["port"].as_u64().unwrap(), s["socket"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(
        servers,
        [
            ("imap".into(), port("imaps"), "SSL".into()),
            ("pop3".into(), port("pop3s"), "SSL".into()),
            ("smtp".into(), port("submissions"), "SSL".into()),
            ("smtp".into(), port("submission"), "STARTTLS".into()),
        ]
    );
    let protocols = found["autodiscover"]["document"]["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 4, "{found:#}");
    assert!(protocols.iter().all(|p| p["LoginName"] == ALICE && p["SSL"] == "on"));
    assert_eq!(found["autodiscover_mobilesync"]["document"]["error"], "601");
    let account = &found["mobileconfig"]["account"];
    assert_eq!(account["EmailAddress"], ALICE);
    assert_eq!(account["IncomingMailServerPortNumber"].as_u64(), Some(port("imaps")));
    // No port 25 on this server: no MTA-STS policy to publish.
    assert_eq!(found["mta_sts"]["status"], 404);

    // One event per request; the address in the query is never logged.
    let requests = server.wait_events(|e| e["event"] == "http_request" && e["status"] == 200, 4);
    assert!(requests.iter().all(|e| e["listener"] == "https" && !e["path"].as_str().unwrap().contains('?')));
    assert!(!server.log_tail().contains("alice%40"), "the query stays out of the log");
    let text = server.http("GET", "/metrics", Some(&server.admin_token()), None).body;
    assert!(text.contains("portcullis_http_requests_total{listener=\"https\",status=\"200\"}"), "{text}");
}

/// With port 25 on, sending servers find the MTA-STS policy (RFC 8461 §3.2) for each local
/// domain, naming this host as the MX, and only under the `mta-sts.` name.
#[test]
fn the_mta_sts_policy_is_served_once_port_25_is_on() {
    let dns = test_dns();
    let mut settings = Settings::mx(dns.addr());
    settings.listen.push("https = [\"127.0.0.1:0\"]".into());
    let server = TestServer::start_with(settings);
    let policy = get(&server, &format!("mta-sts.{DOMAIN}"), "/.well-known/mta-sts.txt");
    assert_eq!(policy.status, 200, "{}{}", policy.head, policy.body);
    assert!(policy.head.to_ascii_lowercase().contains("content-type: text/plain"), "{}", policy.head);
    let lines: Vec<&str> = policy.body.lines().collect();
    assert_eq!(lines.first(), Some(&"version: STSv1"), "{}", policy.body);
    assert!(lines.contains(&"mode: enforce") && lines.contains(&format!("mx: {HOSTNAME}").as_str()), "{}", policy.body);
    assert!(lines.iter().any(|l| l.starts_with("max_age: ")), "{}", policy.body);
    // Not under the domain's own name, nor for a domain that is not ours.
    assert_eq!(get(&server, DOMAIN, "/.well-known/mta-sts.txt").status, 404);
    assert_eq!(get(&server, "mta-sts.example.net", "/.well-known/mta-sts.txt").status, 404);
}

#[test]
fn bad_requests_get_clear_http_errors_and_bounded_time() {
    let server = TestServer::start_with(Settings {
        limits: vec!["max_connections_per_ip = 4".into()],
        sections: vec!["[firewall.https]\ndeny = [\"127.0.0.7\"]".into()],
        ..https_settings()
    });
    // What works, for contrast: the autoconfig document on the domain's own name.
    let ok = get(&server, &format!("autoconfig.{DOMAIN}"), "/mail/config-v1.1.xml");
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert!(ok.body.contains("<clientConfig"), "{}", ok.body);

    // Unknown paths and domains that are not the server's: 404.
    assert_eq!(get(&server, HOSTNAME, "/etc/passwd").status, 404);
    assert_eq!(get(&server, "autoconfig.elsewhere.example", "/mail/config-v1.1.xml").status, 404);
    let other = get(&server, HOSTNAME, "/mail/config-v1.1.xml?emailaddress=someone%40elsewhere.example");
    assert_eq!(other.status, 404);

    // A head over 16 KiB: 431, and the connection is closed.
    let big = format!("GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nX-Filler: {}\r\n\r\n", "a".repeat(20 * 1024));
    assert_eq!(ask(&server, big.as_bytes()).status, 431);

    // A body over 16 KiB, announced or chunked: 413 without reading it all, then closed.
    let announced = format!(
        "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: {HOSTNAME}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    let answer = ask(&server, announced.as_bytes());
    assert_eq!(answer.status, 413);
    assert!(answer.head.to_ascii_lowercase().contains("connection: close"), "{}", answer.head);
    let chunk = "x".repeat(8 * 1024);
    let mut chunked = format!(
        "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: {HOSTNAME}\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..3 {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    assert_eq!(ask(&server, chunked.as_bytes()).status, 413);

    // Plain HTTP on the TLS port: a 400 in plain HTTP that says to use HTTPS.
    let mut plain = TcpStream::connect(server.addr("https")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    plain
        .write_all(format!("GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.{DOMAIN}\r\n\r\n").as_bytes())
        .unwrap();
    let answer = read_answer(&mut plain).expect("a plain HTTP answer");
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("HTTPS only"), "{}", answer.body);

    // Many connections from one source: the guard's per-source limit applies.
    let held: Vec<_> = (0..4)
        .map(|_| server.connect_from("127.0.0.5", "https").upgrade(server.client_config(rustls::ALL_VERSIONS)))
        .collect();
    assert!(server.refused("127.0.0.5", "https"), "a fifth connection from one source is refused");
    let refusal = server.wait_event(|e| {
        e["event"] == "connection_refused"
            && e["listener"] == "https"
            && e["reason"] == "too_many_connections_from_peer"
    });
    assert!(refusal["peer"].as_str().unwrap().starts_with("127.0.0.5:"));
    drop(held);
    // The firewall's rules for this listener, and bans.
    assert!(server.refused("127.0.0.7", "https"));
    server.cli_ok(&["ban", "add", "127.0.0.9"], None);
    server
        .wait_event(|e| e["event"] == "ban_added" && e["network"].as_str().is_some_and(|n| n.starts_with("127.0.0.9")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.refused("127.0.0.9", "https") {
        assert!(Instant::now() < deadline, "a banned source is still admitted");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!server.refused("127.0.0.6", "https"), "others are still served");

    // A client that never finishes its head is closed after the header timeout.
    let mut slow = tls_to(server.addr("https"), HOSTNAME, server.client_config(rustls::ALL_VERSIONS));
    slow.write_all(format!("GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nX-Slow: ").as_bytes()).unwrap();
    slow.flush().unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(19),
        "closed after {waited:?}, not after the 10 s header timeout"
    );

    // Still serving, and every answer was an event.
    assert_eq!(get(&server, &format!("autoconfig.{DOMAIN}"), "/mail/config-v1.1.xml").status, 200);
    for status in [200, 404, 413, 400] {
        server.wait_event(|e| e["event"] == "http_request" && e["status"] == status);
    }
}

// ---- ACME with pebble ----

/// Where pebble's validator connects: the server's HTTPS (TLS-ALPN-01) and port-80 (HTTP-01)
/// listeners.
struct Validated {
    tls_port: u16,
    http_port: u16,
}

/// Pebble on `port`, validating against `to`, refusing `blocklist`; its certificates last
/// 15 seconds, so renewal is due at two thirds: every 10 seconds.
fn start_pebble(
    files: &DirectoryCa,
    dir: &Path,
    port: u16,
    dns: SocketAddr,
    to: Validated,
    blocklist: &[String],
) -> Pebble {
    let blocklist: Vec<&str> = blocklist.iter().map(String::as_str).collect();
    let options = Options {
        port,
        dns,
        tls_port: to.tls_port,
        http_port: to.http_port,
        validity_seconds: 15,
        blocklist: &blocklist,
    };
    Pebble::start(files, dir, options)
}

fn show_me() -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(AnyServerCertificate::shared(&rustls::crypto::ring::default_provider()))
            .with_no_client_auth(),
    )
}

/// The leaf certificate `listener` shows a client asking for `name`.
fn served_leaf(server: &TestServer, listener: &str, name: &str) -> Vec<u8> {
    let tls = tls_to(server.addr(listener), name, show_me());
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn issuer_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.issuer().to_string()
}

/// The leaf of the certificate the server stored from the CA.
fn stored_leaf(server: &TestServer) -> Vec<u8> {
    let pem = std::fs::read(server.dir.path().join("data/acme/certificate.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(&pem).next().unwrap().unwrap().to_vec()
}

/// Waits up to `limit` for `count` events matching `pred`.
fn wait_long(
    server: &TestServer,
    limit: Duration,
    count: usize,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let found: Vec<_> = server.events().into_iter().filter(|e| pred(e)).collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {count} events came; the log ends with {}",
            found.len(),
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every name of DOMAIN resolving to loopback, for pebble's validator.
fn test_dns() -> portcullis_testdns::TestDns {
    let mut zones = portcullis_testdns::Zones::new().zone(DOMAIN);
    for name in every_name() {
        zones = zones.a(&name, Ipv4Addr::LOCALHOST);
    }
    portcullis_testdns::TestDns::start(zones).unwrap()
}

fn acme_line(pebble_port: u16, files: &DirectoryCa, extra: &str) -> String {
    format!(
        "acme = {{ directory = \"https://127.0.0.1:{pebble_port}/dir\", contact = \"mailto:postmaster@{DOMAIN}\", directory_ca = \"{}\"{extra} }}",
        files.ca_file.display()
    )
}

fn issued(e: &serde_json::Value) -> bool {
    e["event"] == "acme_certificate" && e["new"] == true
}

#[test]
fn a_certificate_from_acme_is_served_everywhere_renewed_under_an_open_session_and_kept_when_the_ca_refuses() {
    if !testpebble::present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = test_dns();
    let files = DirectoryCa::new(dir.path());
    let (pebble_port, https_port) = (free_port(), free_port());
    let to = || Validated { tls_port: https_port, http_port: free_port() };
    let pebble = start_pebble(&files, dir.path(), pebble_port, dns.addr(), to(), &[]);
    let server = TestServer::start_with(Settings {
        tls: vec![acme_line(pebble_port, &files, "")],
        listen: vec![format!("https = [\"127.0.0.1:{https_port}\"]")],
        ..Settings::default()
    });

    // Issued by TLS-ALPN-01 on the server's own HTTPS listener, for every name.
    let first = wait_long(&server, Duration::from_secs(60), 1, issued).remove(0);
    let names: Vec<&str> = first["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for name in [HOSTNAME.to_string(), format!("autoconfig.{DOMAIN}"), format!("mta-sts.{DOMAIN}")] {
        assert!(names.contains(&name.as_str()), "{names:?}");
    }
    let leaf = stored_leaf(&server);
    for listener in ["imaps", "submissions", "https"] {
        let shown = served_leaf(&server, listener, HOSTNAME);
        assert_eq!(shown, leaf, "{listener} serves the certificate from the CA");
        assert!(issuer_of(&shown).contains("Pebble"), "{listener}: issued by {}", issuer_of(&shown));
    }
    // A client asking for a name the certificate does not cover gets the configured one.
    assert!(!issuer_of(&served_leaf(&server, "imaps", "localhost")).contains("Pebble"));

    // An IMAP session opened on the first certificate stays up while it is renewed.
    let mut imap = tls_to(server.addr("imaps"), HOSTNAME, show_me());
    assert_eq!(imap.conn.peer_certificates().unwrap()[0].to_vec(), leaf);
    let mut greeting = [0u8; 256];
    let n = imap.read(&mut greeting).unwrap();
    assert!(String::from_utf8_lossy(&greeting[..n]).starts_with("* OK"));
    let renewed = wait_long(&server, Duration::from_secs(60), 2, issued);
    assert!(renewed[1]["not_after"].as_u64() > renewed[0]["not_after"].as_u64());
    let second = stored_leaf(&server);
    assert_ne!(second, leaf);
    assert_eq!(served_leaf(&server, "imaps", HOSTNAME), second, "new handshakes get the renewed certificate");
    imap.write_all(b"a NOOP\r\n").unwrap();
    let n = imap.read(&mut greeting).unwrap();
    assert!(String::from_utf8_lossy(&greeting[..n]).contains("a OK"), "the open session goes on");

    // `portcullis status` shows the expiry and the last renewal.
    server.pin_admin_port();
    let status = server.cli_ok(&["status"], None);
    assert!(status.contains("Certificate from the ACME CA: expires") && status.contains("last renewed"), "{status}");

    // The CA now refuses every name: the certificate in service stays, and an alert says so.
    drop(pebble);
    let blocked: Vec<String> = every_name();
    let _refusing = start_pebble(&files, dir.path(), pebble_port, dns.addr(), to(), &blocked);
    let failed = wait_long(&server, Duration::from_secs(60), 1, |e| e["event"] == "acme_failed").remove(0);
    assert!(failed["failures"].as_u64() >= Some(1), "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("rejectedIdentifier") || error.contains("refused"), "{error}");
    let kept = stored_leaf(&server);
    assert_eq!(served_leaf(&server, "submissions", HOSTNAME), kept, "the old certificate stays in service");
    let (code, alerts) = server.api("GET", "/api/v1/alerts", None);
    assert_eq!(code, 200);
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "certificate_renewal")
        .unwrap_or_else(|| panic!("no certificate_renewal alert in {alerts:#}"));
    assert!(["warning", "critical"].contains(&alert["severity"].as_str().unwrap()), "{alert}");
    let status = server.cli_ok(&["status"], None);
    assert!(status.contains("last attempt failed"), "{status}");
}

#[test]
fn a_certificate_is_issued_by_http_01_on_port_80_which_serves_nothing_else() {
    if !testpebble::present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = test_dns();
    let files = DirectoryCa::new(dir.path());
    let (pebble_port, http_port) = (free_port(), free_port());
    let to = Validated { tls_port: free_port(), http_port };
    let _pebble = start_pebble(&files, dir.path(), pebble_port, dns.addr(), to, &[]);
    let server = TestServer::start_with(Settings {
        tls: vec![acme_line(pebble_port, &files, ", challenge = \"http-01\"")],
        listen: vec![format!("http = [\"127.0.0.1:{http_port}\"]")],
        ..Settings::default()
    });
    wait_long(&server, Duration::from_secs(60), 1, issued);
    let shown = served_leaf(&server, "imaps", HOSTNAME);
    assert_eq!(shown, stored_leaf(&server));
    assert!(issuer_of(&shown).contains("Pebble"), "issued by {}", issuer_of(&shown));
    let answered = server.wait_event(|e| e["event"] == "http_request" && e["listener"] == "http" && e["status"] == 200);
    assert!(answered["path"].as_str().unwrap().starts_with("/.well-known/acme-challenge/"), "{answered}");

    // Nothing but challenge answers without TLS: the documents are a 404 on port 80, and so is
    // a token that is not pending.
    for target in ["/mail/config-v1.1.xml", "/.well-known/acme-challenge/not-pending", "/.well-known/mta-sts.txt"] {
        let mut plain = TcpStream::connect(server.addr("http")).unwrap();
        plain.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        plain.write_all(format!("GET {target} HTTP/1.1\r\nHost: autoconfig.{DOMAIN}\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_answer(&mut plain).expect("an answer").status, 404, "{target}");
    }
}
