//! Outbound TLS policies end to end (issue 15), between real Portcullis processes on loopback,
//! names served by `portcullis_testdns`:
//! - MTA-STS enforce: B (127.0.0.3) publishes `_mta-sts.b.test` and serves its policy on its
//!   own HTTPS listener, with a certificate from a CA made here that A trusts through
//!   `delivery.trust_roots`. A→B goes over validated TLS; a receiver in B's place that offers
//!   no STARTTLS, or one whose certificate names another host, gets nothing (it counts the
//!   messages it took) and the message waits in A's queue with the reason.
//! - DANE: TLSA records answered with the AD bit; a `3 1 1` record of B's key delivers, a
//!   record that matches nothing defers, B receiving nothing.
//! - `[relay]`: A hands everything to a smart host, a third instance's submission port (587,
//!   STARTTLS, AUTH required), which delivers to B.
//!
//! Each `delivery_attempt` event is checked for its TLS version, cipher, certificate verdict
//! and policy.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Settings, TestServer, ALICE, DOMAIN, HOSTNAME, PASSWORD};
use portcullis_testdns::{TestDns, Zones};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

const B_DOMAIN: &str = "b.test";
const CAROL: &str = "carol@b.test";
const A_IP: &str = "127.0.0.2";
const B_IP: &str = "127.0.0.3";
/// Where a stand-in for B listens when B itself must not be reached.
const IMPOSTOR_IP: &str = "127.0.0.7";

/// A CA made for one test.
struct TestCa {
    der: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate (PEM chain with the CA) and its key.
struct Leaf {
    chain_pem: String,
    key: KeyPair,
    chain: Vec<CertificateDer<'static>>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Portcullis outbound test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { der: cert.der().clone(), pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            chain: vec![cert.der().clone(), self.der.clone()],
            key,
        }
    }

    /// The CA's PEM in `dir`, for `delivery.trust_roots`.
    fn write(&self, dir: &std::path::Path) -> String {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path.display().to_string()
    }
}

/// Gives a running server a certificate from `ca` for `names` (SIGHUP reloads it).
fn recertify(server: &TestServer, ca: &TestCa, names: &[&str]) {
    let leaf = ca.issue(names);
    std::fs::write(server.dir.path().join("cert.pem"), &leaf.chain_pem).unwrap();
    std::fs::write(server.dir.path().join("key.pem"), leaf.key.serialize_pem()).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let reloaded = server.wait_event(|e| e["event"] == "config_reloaded" && e["what"] == "tls");
    assert_eq!(reloaded["ok"], true, "{reloaded}");
}

fn dns_section(dns: &TestDns) -> String {
    format!("[dns]\nservers = [\"{}\"]\ntimeout = \"1s\"\nattempts = 1", dns.addr())
}

/// The zones every test shares: A's domain (SPF for 127.0.0.2, so B accepts its mail), and
/// b.test, whose exchanger is B's host name at `mx_ip`.
fn base_zones(mx_ip: &str) -> Zones {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    Zones::new()
        .zone(DOMAIN)
        .mx(DOMAIN, 10, &format!("out.{DOMAIN}"))
        .a(&format!("out.{DOMAIN}"), ip(A_IP))
        .txt(DOMAIN, &format!("v=spf1 ip4:{A_IP} -all"))
        .zone(B_DOMAIN)
        .mx(B_DOMAIN, 10, HOSTNAME)
        .a(HOSTNAME, ip(mx_ip))
}

/// MTA-STS for b.test: the TXT record, and the policy host at B.
fn with_mta_sts(zones: Zones) -> Zones {
    zones
        .txt(&format!("_mta-sts.{B_DOMAIN}"), "v=STSv1; id=20261207T000000")
        .a(&format!("mta-sts.{B_DOMAIN}"), B_IP.parse().unwrap())
}

/// B: port 25 and HTTPS on 127.0.0.3, carol in b.test, a certificate from `ca` for its host
/// name and the MTA-STS policy host.
fn start_b(dns: &TestDns, ca: &TestCa) -> TestServer {
    let b = TestServer::start_with(Settings {
        listen: vec![format!("smtp = [\"{B_IP}:0\"]"), format!("https = [\"{B_IP}:0\"]")],
        sections: vec![dns_section(dns)],
        ..Settings::default()
    });
    b.cli_ok(&["domain", "add", B_DOMAIN], None);
    b.cli_ok(&["account", "add", CAROL, "--password-stdin"], Some(PASSWORD));
    recertify(&b, ca, &[HOSTNAME, &format!("mta-sts.{B_DOMAIN}"), "localhost"]);
    b
}

/// A: sends from 127.0.0.2 to exchangers on B's port 25 and fetches policies from B's HTTPS
/// port, trusting the test CA; `extra` adds sections.
fn start_a(dns: &TestDns, b: &TestServer, ca: &TestCa, extra: &[String]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let roots = ca.write(dir.path());
    let mut sections = vec![
        dns_section(dns),
        "[queue]\nretry_first = \"1s\"\nretry_max_interval = \"1s\"\nexpire = \"1h\"\ndelay_notice = \"0s\"".into(),
        format!(
            "[delivery]\nsource_ipv4 = \"{A_IP}\"\nport = {}\ntrust_roots = \"{roots}\"\nreply_timeout = \"5s\"",
            b.addr("smtp").port()
        ),
        format!("[mta_sts]\nport = {}", b.addr("https").port()),
    ];
    sections.extend(extra.iter().cloned());
    let a = TestServer::start_with(Settings { sections, ..Settings::default() });
    // The CA file is read at start; the directory may go.
    drop(dir);
    a
}

/// Alice submits to carol on A over 465.
fn submit(a: &TestServer, subject: &str) {
    let reply = a.submit(CAROL, &format!("From: <{ALICE}>\r\nTo: <{CAROL}>\r\nSubject: {subject}\r\n\r\nHello carol."));
    assert!(reply.starts_with("250 "), "{reply}");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first delivery attempt A logs for b.test.
fn attempt(a: &TestServer) -> serde_json::Value {
    a.wait_event(|e| e["event"] == "delivery_attempt" && e["domain"] == B_DOMAIN)
}

/// A delivered attempt, over validated TLS under `policy`.
fn assert_delivered_over_validated_tls(attempt: &serde_json::Value, policy: &str) {
    assert_eq!(attempt["delivered"], 1, "{attempt}");
    assert_eq!(attempt["tls_policy"], policy, "{attempt}");
    assert_eq!(attempt["tls_result"], "verified", "{attempt}");
    assert!(attempt["tls_version"].as_str().is_some_and(|v| v == "TLSv1.3" || v == "TLSv1.2"), "{attempt}");
    assert!(attempt["tls_cipher"].as_str().is_some_and(|c| c.starts_with("TLS")), "{attempt}");
    assert!(attempt.get("tls_failure").is_none(), "{attempt}");
}

/// A deferred attempt, and the reason shown by `queue list`.
fn assert_deferred(a: &TestServer, attempt: &serde_json::Value, policy: &str, failure: &str) {
    assert_eq!((attempt["delivered"].as_u64(), attempt["deferred"].as_u64()), (Some(0), Some(1)), "{attempt}");
    assert_eq!(attempt["tls_policy"], policy, "{attempt}");
    assert_eq!(attempt["tls_result"], "failed", "{attempt}");
    assert_eq!(attempt["tls_failure"], failure, "{attempt}");
    // The event comes before the attempt's record is written: wait for the reason.
    let mut list = String::new();
    wait_for("the reason in `queue list`", || {
        list = a.cli_ok(&["queue", "list"], None);
        list.contains(&format!("{CAROL} (pending): "))
    });
}

/// What a stand-in receiver saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    messages: AtomicUsize,
}

/// A receiver on `ip:port` speaking just enough SMTP; with `tls`, it offers STARTTLS with
/// that certificate. It counts connections and the messages it took.
fn impostor(ip: &str, port: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Arc<Seen> {
    let listener = TcpListener::bind((ip, port)).unwrap_or_else(|e| panic!("receiver on {ip}:{port}: {e}"));
    let seen = Arc::new(Seen::default());
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            counter.connections.fetch_add(1, Ordering::SeqCst);
            let (counter, tls) = (counter.clone(), tls.clone());
            std::thread::spawn(move || serve(stream, tls, &counter));
        }
    });
    seen
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn serve(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, seen: &Seen) {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut lines: BufReader<Box<dyn Stream>> = BufReader::new(Box::new(tcp.try_clone().unwrap()));
    let mut tls = tls;
    let _ = lines.get_mut().write_all(b"220 impostor.test ESMTP\r\n");
    let mut line = String::new();
    let mut in_data = false;
    let mut secure = false;
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        let verb = line.get(..4).map(|c| c.to_ascii_uppercase());
        let reply: Option<String> = if in_data {
            if line == ".\r\n" {
                in_data = false;
                seen.messages.fetch_add(1, Ordering::SeqCst);
                Some("250 2.0.0 taken".into())
            } else {
                None
            }
        } else {
            match verb.as_deref() {
                Some("EHLO") if tls.is_some() && !secure => Some("250-impostor.test\r\n250 STARTTLS".into()),
                Some("EHLO") => Some("250-impostor.test\r\n250 8BITMIME".into()),
                Some("STAR") if tls.is_some() && !secure => {
                    let config = tls.take().unwrap();
                    if lines.get_mut().write_all(b"220 2.0.0 go ahead\r\n").is_err() {
                        return;
                    }
                    let Ok(connection) = rustls::ServerConnection::new(config) else { return };
                    let stream = rustls::StreamOwned::new(connection, tcp.try_clone().unwrap());
                    lines = BufReader::new(Box::new(stream));
                    secure = true;
                    line.clear();
                    continue;
                }
                Some("DATA") => {
                    in_data = true;
                    Some("354 go on".into())
                }
                Some("QUIT") => {
                    let _ = lines.get_mut().write_all(b"221 bye\r\n");
                    return;
                }
                _ => Some("250 ok".into()),
            }
        };
        if let Some(reply) = reply {
            let out = lines.get_mut();
            if out.write_all(format!("{reply}\r\n").as_bytes()).and_then(|_| out.flush()).is_err() {
                return;
            }
        }
        line.clear();
    }
}

fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(leaf.key.serialize_der().into());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), key)
            .unwrap(),
    )
}

/// B took a message over port 25, over TLS.
fn assert_b_received(b: &TestServer) {
    let received = b.wait_event(|e| e["event"] == "message_received");
    assert_eq!(received["mail_from"], ALICE, "{received}");
    assert!(received["tls_version"].as_str().is_some(), "it came over TLS: {received}");
}

fn b_received_nothing(b: &TestServer) -> bool {
    !b.events().iter().any(|e| e["event"] == "message_received")
}

#[test]
fn mta_sts_enforce_delivers_over_validated_tls() {
    let ca = TestCa::new();
    let dns = TestDns::start(with_mta_sts(base_zones(B_IP))).unwrap();
    let b = start_b(&dns, &ca);
    let a = start_a(&dns, &b, &ca, &[]);
    submit(&a, "under MTA-STS");
    assert_delivered_over_validated_tls(&attempt(&a), "mta-sts-enforce");
    assert_b_received(&b);
    // The policy came from B's HTTPS listener, under the mta-sts name.
    assert!(dns.asked().iter().any(|q| q.name == format!("_mta-sts.{B_DOMAIN}") && q.rtype == "TXT"));
    assert!(dns.asked().iter().any(|q| q.name == format!("mta-sts.{B_DOMAIN}")));
}

#[test]
fn mta_sts_enforce_without_starttls_defers_and_nothing_goes_in_the_clear() {
    let ca = TestCa::new();
    let dns = TestDns::start(with_mta_sts(base_zones(IMPOSTOR_IP))).unwrap();
    let b = start_b(&dns, &ca);
    let seen = impostor(IMPOSTOR_IP, b.addr("smtp").port(), None);
    let a = start_a(&dns, &b, &ca, &[]);
    submit(&a, "must not leak");
    let first = attempt(&a);
    assert_deferred(&a, &first, "mta-sts-enforce", "starttls-not-supported");
    assert!(first.get("tls_version").is_none(), "no TLS, so nothing was sent: {first}");
    // Tried again later, never in the clear.
    a.wait_events(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1, 2);
    assert!(seen.connections.load(Ordering::SeqCst) >= 2, "the receiver was reached");
    assert_eq!(seen.messages.load(Ordering::SeqCst), 0, "nothing was sent without TLS");
    assert!(b_received_nothing(&b));
}

#[test]
fn mta_sts_enforce_with_a_certificate_for_another_name_defers() {
    let ca = TestCa::new();
    let dns = TestDns::start(with_mta_sts(base_zones(IMPOSTOR_IP))).unwrap();
    let b = start_b(&dns, &ca);
    // Trusted issuer, wrong name: only a name check can catch it.
    let wrong = ca.issue(&["wrong.example.test"]);
    let seen = impostor(IMPOSTOR_IP, b.addr("smtp").port(), Some(server_config(&wrong)));
    let a = start_a(&dns, &b, &ca, &[]);
    submit(&a, "must not leak");
    let first = attempt(&a);
    assert_deferred(&a, &first, "mta-sts-enforce", "certificate-host-mismatch");
    assert!(first["reason"].as_str().is_some_and(|r| !r.is_empty()), "{first}");
    assert!(seen.connections.load(Ordering::SeqCst) >= 1, "the receiver was reached");
    std::thread::sleep(Duration::from_secs(2)); // another attempt or two
    assert_eq!(seen.messages.load(Ordering::SeqCst), 0, "nothing was sent to the wrong server");
}

/// The TLSA record `3 1 1` of the certificate in `pem` (SHA-256 of its SubjectPublicKeyInfo).
fn tlsa_3_1_1(pem_path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read(pem_path).unwrap();
    let der: CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("a certificate in cert.pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw).to_vec()
}

/// Zones for DANE: every answer about b.test and B's host validated (AD), a TLSA record for
/// B's port 25 with `data`; no MTA-STS.
fn dane_zones(port: u16, data: &[u8]) -> Zones {
    base_zones(B_IP).authenticated(B_DOMAIN).authenticated(DOMAIN).tlsa(
        &format!("_{port}._tcp.{HOSTNAME}"),
        3,
        1,
        1,
        data,
    )
}

#[test]
fn dane_with_a_matching_tlsa_record_delivers() {
    let ca = TestCa::new();
    let dns = TestDns::start(base_zones(B_IP)).unwrap();
    let b = start_b(&dns, &ca);
    let port = b.addr("smtp").port();
    dns.set_zones(dane_zones(port, &tlsa_3_1_1(&b.cert_path())));
    let a = start_a(&dns, &b, &ca, &[]);
    submit(&a, "under DANE");
    assert_delivered_over_validated_tls(&attempt(&a), "dane");
    assert_b_received(&b);
    assert!(dns.asked().iter().any(|q| q.rtype == "TLSA" && q.name == format!("_{port}._tcp.{HOSTNAME}")));
}

#[test]
fn dane_with_a_record_that_matches_nothing_defers() {
    let ca = TestCa::new();
    let dns = TestDns::start(base_zones(B_IP)).unwrap();
    let b = start_b(&dns, &ca);
    let mut data = tlsa_3_1_1(&b.cert_path());
    data[0] ^= 0xff;
    dns.set_zones(dane_zones(b.addr("smtp").port(), &data));
    let a = start_a(&dns, &b, &ca, &[]);
    submit(&a, "must not leak");
    let first = attempt(&a);
    assert_deferred(&a, &first, "dane", "tlsa-invalid");
    a.wait_events(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1, 2);
    assert!(b_received_nothing(&b), "B got nothing");
}

#[test]
fn the_smart_host_takes_everything_after_auth_over_verified_starttls() {
    const SMART_HOST: &str = "smarthost.test";
    // The test servers' submission listener is on 127.0.0.1.
    const S_IP: &str = "127.0.0.1";
    let ca = TestCa::new();
    let zones = base_zones(B_IP).zone("smarthost.test").a(SMART_HOST, S_IP.parse().unwrap());
    let dns = TestDns::start(zones).unwrap();
    let b = start_b(&dns, &ca);
    // S: the smart host, a Portcullis whose submission port (STARTTLS, AUTH required) takes
    // alice's mail and hands it to B from 127.0.0.2 (what SPF allows).
    let s = TestServer::start_with(Settings {
        sections: vec![
            dns_section(&dns),
            format!("[delivery]\nsource_ipv4 = \"{A_IP}\"\nport = {}", b.addr("smtp").port()),
        ],
        ..Settings::default()
    });
    recertify(&s, &ca, &[SMART_HOST]);
    let secret = s.dir.path().join("relay.secret");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let relay = format!(
        "[relay]\nhost = \"{SMART_HOST}\"\nport = {}\ntls = \"starttls\"\nusername = \"{ALICE}\"\npassword_file = \"{}\"",
        s.addr("submission").port(),
        secret.display()
    );
    let a = start_a(&dns, &b, &ca, &[relay]);
    submit(&a, "through the smart host");

    let first = attempt(&a);
    assert_delivered_over_validated_tls(&first, "relay");
    assert_eq!(first["host"], SMART_HOST, "{first}");
    let login = s.wait_event(|e| e["event"] == "auth_succeeded");
    assert_eq!(login["listener"], "submission", "{login}");
    assert_eq!(login["account"], ALICE, "{login}");
    // S hands it on to B.
    let onward = s.wait_event(|e| e["event"] == "delivery_attempt" && e["domain"] == B_DOMAIN);
    assert_eq!(onward["delivered"], 1, "{onward}");
    assert_b_received(&b);
    wait_for("A's queue to empty", || a.cli_ok(&["queue", "list"], None).contains("The queue is empty."));
}
