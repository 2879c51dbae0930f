//! The manager against pebble (Debian's small ACME test CA) on loopback: a certificate is
//! issued by TLS-ALPN-01 and by HTTP-01, renewed at two thirds of a shortened lifetime, and
//! served; a CA that refuses leaves the old certificate in place and raises critical
//! failures. Pebble resolves the names through crates/testdns and validates by connecting to
//! the test's own TLS and HTTP listeners (its `tlsPort` and `httpPort`).
//!
//! Needs /usr/bin/pebble (`apt-get install pebble`); without it the tests say SKIPPED, and
//! fail under PORTCULLIS_REQUIRE_ALL=1 as every suite here does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_acme::{
    https_alpn_protocols, is_challenge_connection, AcmeEvent, AcmeSettings, CertStore, ChallengeKind,
    ChallengeResolver, Challenges, Hooks, Manager, Urgency,
};
use portcullis_testdns::{TestDns, Zones};
use portcullis_testpebble::{self as testpebble, free_port, DirectoryCa, Options, Pebble};
use portcullis_tls_client::AnyServerCertificate;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NAMES: [&str; 2] = ["mail.example.test", "autoconfig.example.test"];

fn zones() -> Zones {
    let mut zones = Zones::new().zone("example.test");
    for name in NAMES {
        zones = zones.a(name, Ipv4Addr::LOCALHOST);
    }
    zones
}

/// What the test's listeners serve when no challenge is asked: the certificate the swap hook
/// installed last.
#[derive(Debug, Default)]
struct Served(Mutex<Option<Arc<CertifiedKey>>>);

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.lock().unwrap().clone()
    }
}

/// The HTTPS listener's part that matters here: TLS with the challenge resolver in front,
/// `acme-tls/1` connections closed after the handshake (RFC 8737 §3).
async fn serve_tls(listener: TcpListener, challenges: Arc<Challenges>, served: Arc<Served>) {
    let resolver = Arc::new(ChallengeResolver::new(challenges, served));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = https_alpn_protocols();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let challenge = is_challenge_connection(tls.get_ref().1.alpn_protocol());
                if !challenge {
                    let _ = tls.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
                }
                let _ = tls.shutdown().await;
            }
        });
    }
}

/// Port 80's part: `GET /.well-known/acme-challenge/TOKEN` answered from the challenges.
async fn serve_http(listener: TcpListener, challenges: Arc<Challenges>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let challenges = challenges.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
            }
            let request = String::from_utf8_lossy(&buf[..len]).to_string();
            let target = request.split_whitespace().nth(1).unwrap_or("");
            let answer = target.strip_prefix("/.well-known/acme-challenge/").and_then(|t| challenges.http01(t));
            let response = match answer {
                Some(body) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// The certificate a client is shown for `name` on `port`.
async fn shown(port: u16, name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(AnyServerCertificate::shared(&rustls::crypto::ring::default_provider()))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.unwrap();
    let tls = connector.connect(ServerName::try_from(name.to_string()).unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

struct Rig {
    _dns: TestDns,
    dir: tempfile::TempDir,
    ca: DirectoryCa,
    dns_addr: SocketAddr,
    tls_port: u16,
    http_port: u16,
    challenges: Arc<Challenges>,
    served: Arc<Served>,
}

async fn rig() -> Rig {
    let dns = TestDns::start(zones()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = DirectoryCa::new(dir.path());
    let challenges = Challenges::new();
    let served = Arc::new(Served::default());
    let tls = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let http = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (tls_port, http_port) = (tls.local_addr().unwrap().port(), http.local_addr().unwrap().port());
    tokio::spawn(serve_tls(tls, challenges.clone(), served.clone()));
    tokio::spawn(serve_http(http, challenges.clone()));
    Rig { dns_addr: dns.addr(), _dns: dns, dir, ca, tls_port, http_port, challenges, served }
}

impl Rig {
    fn pebble(&self, validity_seconds: u64, blocklist: &[&str]) -> Pebble {
        Pebble::start(
            &self.ca,
            self.dir.path(),
            Options {
                port: free_port(),
                dns: self.dns_addr,
                tls_port: self.tls_port,
                http_port: self.http_port,
                validity_seconds,
                blocklist,
            },
        )
    }

    fn settings(&self, pebble: &Pebble, challenge: ChallengeKind) -> AcmeSettings {
        let names = NAMES.iter().map(|n| n.to_string()).collect();
        let mut settings = AcmeSettings::new(pebble.directory(), vec!["mailto:postmaster@example.test".into()], names);
        settings.challenge = challenge;
        settings.extra_roots = vec![self.ca.root.clone()];
        settings.retry_first = Duration::from_millis(300);
        settings.retry_max = Duration::from_secs(2);
        settings.order_timeout = Duration::from_secs(30);
        settings
    }

    /// A manager whose hooks install into the rig's listener and record every event.
    fn manager(&self, settings: AcmeSettings) -> (Arc<Manager>, Arc<Mutex<Vec<AcmeEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let served = self.served.clone();
        let hooks = Hooks {
            on_event: Box::new(move |e| seen.lock().unwrap().push(e)),
            on_certificate: Box::new(move |key| *served.0.lock().unwrap() = Some(key)),
        };
        let store = CertStore::open(self.dir.path().join("acme")).unwrap();
        (Arc::new(Manager::new(settings, store, self.challenges.clone(), hooks)), events)
    }

    fn stored_leaf(&self) -> Vec<u8> {
        let store = CertStore::open(self.dir.path().join("acme")).unwrap();
        store.load_certificate().unwrap().expect("a stored certificate").key.cert[0].to_vec()
    }
}

async fn wait_for(events: &Mutex<Vec<AcmeEvent>>, what: &str, timeout: Duration, done: impl Fn(&[AcmeEvent]) -> bool) {
    let deadline = Instant::now() + timeout;
    while !done(&events.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:#?}", events.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn issued(events: &[AcmeEvent]) -> usize {
    events.iter().filter(|e| matches!(e, AcmeEvent::Issued { .. })).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_by_tls_alpn_01_served_and_renewed_at_two_thirds_of_its_life() {
    if !testpebble::present() {
        return;
    }
    let rig = rig().await;
    let pebble = rig.pebble(12, &[]);
    let (manager, events) = rig.manager(rig.settings(&pebble, ChallengeKind::TlsAlpn01));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = manager.clone();
    let task = tokio::spawn(async move {
        running
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    wait_for(&events, "the first certificate", Duration::from_secs(30), |e| issued(e) >= 1).await;
    let first = rig.stored_leaf();
    assert_eq!(shown(rig.tls_port, NAMES[0]).await, first, "the listener serves the stored certificate");
    let stored = manager.current().unwrap().unwrap();
    assert!(stored.key.cert.len() >= 2, "the chain includes pebble's intermediate");
    let lifetime = stored.validity.lifetime();
    assert!(lifetime <= Duration::from_secs(13), "pebble shortened the lifetime: {lifetime:?}");
    let mode = std::fs::metadata(manager.store().certificate_path()).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);

    // Due at 8 of 12 seconds: a second certificate, with nobody asking.
    let started = Instant::now();
    wait_for(&events, "the renewal", Duration::from_secs(30), |e| issued(e) >= 2).await;
    assert!(started.elapsed() >= Duration::from_secs(4), "renewed too early: {:?}", started.elapsed());
    let second = rig.stored_leaf();
    assert_ne!(second, first);
    assert_eq!(shown(rig.tls_port, NAMES[1]).await, second, "the renewed certificate is served at once");
    assert!(rig.challenges.tls_alpn01(NAMES[0]).is_none(), "challenge answers are withdrawn");
    let _ = stop.send(());
    task.await.unwrap();
    drop(pebble);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_by_http_01() {
    if !testpebble::present() {
        return;
    }
    let rig = rig().await;
    let pebble = rig.pebble(3600, &[]);
    let (manager, events) = rig.manager(rig.settings(&pebble, ChallengeKind::Http01));
    let issued = manager.renew_now().await.expect("issued by HTTP-01");
    assert_eq!(issued.key.cert[0].to_vec(), rig.stored_leaf());
    assert_eq!(self::issued(&events.lock().unwrap()), 1);
    assert_eq!(shown(rig.tls_port, NAMES[0]).await, rig.stored_leaf());
    drop(pebble);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_refuses_leaves_the_old_certificate_in_place_and_raises_alerts() {
    if !testpebble::present() {
        return;
    }
    let rig = rig().await;
    let old = {
        let pebble = rig.pebble(6, &[]);
        let (manager, _) = rig.manager(rig.settings(&pebble, ChallengeKind::TlsAlpn01));
        manager.renew_now().await.expect("the first certificate");
        rig.stored_leaf()
    };
    // Two thirds of six seconds pass: the certificate is due when the refusing CA is asked.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refusing = rig.pebble(6, &NAMES);
    *rig.served.0.lock().unwrap() = None;
    let (manager, events) = rig.manager(rig.settings(&refusing, ChallengeKind::TlsAlpn01));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = manager.clone();
    let task = tokio::spawn(async move {
        running
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let failed = |e: &[AcmeEvent]| e.iter().filter(|e| matches!(e, AcmeEvent::Failed { .. })).count();
    wait_for(&events, "two failed attempts", Duration::from_secs(30), |e| failed(e) >= 2).await;
    let _ = stop.send(());
    task.await.unwrap();

    let events = events.lock().unwrap().clone();
    assert!(matches!(events[0], AcmeEvent::Loaded { .. }), "the stored certificate is put in service: {events:#?}");
    let failures: Vec<&AcmeEvent> = events.iter().filter(|e| matches!(e, AcmeEvent::Failed { .. })).collect();
    for (n, failure) in failures.iter().enumerate() {
        let AcmeEvent::Failed { error, failures, retry_in, urgency, .. } = failure else { unreachable!() };
        assert!(error.contains("refused") || error.contains("rejectedIdentifier"), "{error}");
        assert_eq!(*failures as usize, n + 1);
        assert_eq!(*urgency, Urgency::Critical, "under a sixth of the lifetime left");
        assert!(*retry_in >= Duration::from_millis(300));
    }
    assert_eq!(issued(&events), 0);
    assert_eq!(rig.stored_leaf(), old, "the old certificate stays stored");
    assert_eq!(shown(rig.tls_port, NAMES[0]).await, old, "and served");
    drop(refusing);
}
