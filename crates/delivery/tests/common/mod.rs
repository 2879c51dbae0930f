//! Shared pieces of the delivery tests: a test CA and certificates made at test time, a test
//! DNS, a courier pointed at them, and a small SMTP receiver (STARTTLS, REQUIRETLS, AUTH on
//! request) that records what reached it, for the cases Postfix cannot be told to play.
#![allow(dead_code)]

use portcullis_delivery::{Batch, BatchReport, Courier, DeliverySettings, RemoteCourier, Timeouts, TrustRoots};
use portcullis_dns::{DnsSettings, Resolver};
use portcullis_smtp_client::{Message, MessageParams, Recipient};
use portcullis_testdns::{TestDns, Zones};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA made for one test.
pub struct TestCa {
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate chain and its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        TestCa { der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A leaf for `names`, issued by this CA; the chain holds the leaf and the CA (as
    /// servers send it, so DANE-TA can find its anchor).
    pub fn issue(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity { chain: vec![cert.der().clone(), self.der.clone()], key }
    }
}

impl Identity {
    /// A self-signed leaf (trusted by nobody).
    pub fn self_signed(names: &[&str]) -> Identity {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        Identity { chain: vec![cert.der().clone()], key }
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(self.key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        Arc::new(config)
    }

    pub fn leaf_spki(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.key)
    }
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// A resolver asking only the test DNS, quickly.
pub fn resolver(dns: &TestDns) -> Resolver {
    let mut settings = DnsSettings::with_servers(vec![dns.addr()]);
    settings.timeout = Duration::from_millis(500);
    settings.attempts = 2;
    Resolver::new(&settings).unwrap()
}

/// Settings for tests: short waits, exchangers on `port`.
pub fn settings(port: u16) -> DeliverySettings {
    let mut s = DeliverySettings::new("out.portcullis.test");
    s.port = port;
    s.timeouts = Timeouts {
        connect: Duration::from_secs(3),
        greeting: Duration::from_secs(3),
        command: Duration::from_secs(3),
        mail: Duration::from_secs(3),
        rcpt: Duration::from_secs(3),
        data_start: Duration::from_secs(3),
        data_block: Duration::from_secs(3),
        data_end: Duration::from_secs(3),
        tls_handshake: Duration::from_secs(3),
        min_data_rate: 1024,
    };
    s.mta_sts_timeout = Duration::from_secs(3);
    s
}

pub fn courier(dns: &TestDns, settings: DeliverySettings, extra_roots: &[CertificateDer<'static>]) -> RemoteCourier {
    RemoteCourier::new(settings, resolver(dns), TrustRoots::new(extra_roots).unwrap())
}

pub fn message(recipients: &[&str]) -> Message {
    Message {
        sender: "alice@portcullis.test".into(),
        recipients: recipients
            .iter()
            .map(|r| Recipient { address: r.to_string(), notify: None, original: None })
            .collect(),
        params: MessageParams::default(),
        content: Arc::from(
            &b"From: alice@portcullis.test\r\nSubject: outbound test\r\n\r\nHello.\r\n.dot line\r\n"[..],
        ),
    }
}

pub async fn deliver(courier: &RemoteCourier, domain: &str, messages: Vec<Message>) -> BatchReport {
    courier.deliver(Batch { domain: domain.into(), messages }).await
}

/// A zone: `domain` with one MX `mx.domain` at `ip`.
pub fn zone_with_mx(domain: &str, ip: std::net::Ipv4Addr) -> Zones {
    let mx = format!("mx.{domain}");
    Zones::new().zone(domain).mx(domain, 10, &mx).a(&mx, ip)
}

/// A free TCP port on `ip` (bound and released: a test that loses the race retries).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// What the test receiver saw of one message.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
    pub auth: Option<String>,
}

/// How the test receiver behaves.
#[derive(Clone)]
pub struct Behaviour {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub extensions: Vec<&'static str>,
}

/// A small SMTP server on `ip`, recording every message it accepts.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<Mutex<usize>>,
    /// The address each connection came from.
    pub peers: Arc<Mutex<Vec<IpAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(ip: IpAddr, port: u16, behaviour: Behaviour) -> Receiver {
        Receiver::listen(ip, port, behaviour, false).await
    }

    /// TLS from the first byte (a submission server on 465, RFC 8314).
    pub async fn start_implicit_tls(ip: IpAddr, port: u16, behaviour: Behaviour) -> Receiver {
        Receiver::listen(ip, port, behaviour, true).await
    }

    async fn listen(ip: IpAddr, port: u16, behaviour: Behaviour, implicit: bool) -> Receiver {
        let listener = TcpListener::bind((ip, port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (r, c, p) = (received.clone(), connections.clone(), peers.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { return };
                *c.lock().unwrap() += 1;
                p.lock().unwrap().push(peer.ip());
                tokio::spawn(serve(stream, behaviour.clone(), r.clone(), implicit));
            }
        });
        Receiver { addr, received, connections, peers, task }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(mut tcp: TcpStream, behaviour: Behaviour, log: Arc<Mutex<Vec<Received>>>, implicit: bool) {
    if implicit {
        let Some(config) = behaviour.tls.clone() else { return };
        let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else { return };
        if tls.write_all(b"220 receiver.test ESMTP\r\n").await.is_ok() {
            dialogue(&mut tls, &behaviour, &log, true).await;
        }
        return;
    }
    if tcp.write_all(b"220 receiver.test ESMTP\r\n").await.is_err() {
        return;
    }
    if dialogue(&mut tcp, &behaviour, &log, false).await {
        let Some(config) = behaviour.tls.clone() else { return };
        let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else { return };
        dialogue(&mut tls, &behaviour, &log, true).await;
    }
}

/// One SMTP dialogue; true when it ends in STARTTLS.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    behaviour: &Behaviour,
    log: &Mutex<Vec<Received>>,
    tls: bool,
) -> bool {
    let mut buf = Vec::new();
    let mut current = Received { tls, ..Received::default() };
    let mut auth = None;
    loop {
        let Some(line) = read_line(s, &mut buf).await else { return false };
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut ext: Vec<&str> =
                behaviour.extensions.iter().copied().filter(|e| !(tls && *e == "STARTTLS")).collect();
            if behaviour.tls.is_some() && !tls {
                ext.push("STARTTLS");
            }
            let mut text = String::from("250-receiver.test\r\n");
            for e in &ext {
                text.push_str(&format!("250-{e}\r\n"));
            }
            text.push_str("250 8BITMIME\r\n");
            text
        } else if upper == "STARTTLS" && behaviour.tls.is_some() && !tls {
            let _ = s.write_all(b"220 2.0.0 ready\r\n").await;
            return true;
        } else if upper.starts_with("AUTH PLAIN ") {
            auth = Some(line[11..].to_string());
            "235 2.7.0 ok\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            current = Received { tls, auth: auth.clone(), mail_from: line.clone(), ..Received::default() };
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt_to.push(line.clone());
            "250 2.1.5 ok\r\n".into()
        } else if upper == "DATA" {
            let _ = s.write_all(b"354 go ahead\r\n").await;
            loop {
                let Some(l) = read_line(s, &mut buf).await else { return false };
                if l == "." {
                    break;
                }
                current.data.extend_from_slice(l.as_bytes());
                current.data.extend_from_slice(b"\r\n");
            }
            log.lock().unwrap().push(current.clone());
            "250 2.0.0 queued\r\n".into()
        } else if upper == "QUIT" {
            let _ = s.write_all(b"221 2.0.0 bye\r\n").await;
            return false;
        } else {
            "250 2.0.0 ok\r\n".into()
        };
        if s.write_all(reply.as_bytes()).await.is_err() {
            return false;
        }
    }
}

async fn read_line<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).collect();
            return Some(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Whether a test that needs `program` should run: missing is a skip, or a failure when
/// PORTCULLIS_REQUIRE_ALL is set (CI).
pub fn have(program: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = format!("{dir}/{program}");
        if std::path::Path::new(&path).exists() {
            return Some(path);
        }
    }
    assert!(
        std::env::var_os("PORTCULLIS_REQUIRE_ALL").is_none(),
        "{program} is not installed (apt-get install postfix; .ci/run does)"
    );
    eprintln!("SKIPPED: {program} is not installed");
    None
}
