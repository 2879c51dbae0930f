//! TLS policies end to end on loopback: MTA-STS (policy served over HTTPS by a test server
//! whose certificate comes from a test CA, its host name resolved by the test DNS), DANE
//! (TLSA records with and without the AD bit), REQUIRETLS, null MX and the smart host.
//! Each "deferred" case also checks that nothing reached the receiver in the clear.

mod common;

use common::*;
use portcullis_delivery::{AttemptOutcome, CertificateCheck, PolicyKind, Relay, TlsFailure, Why};
use portcullis_smtp_client::{Credentials, Disposition, LocalReason, Reason};
use portcullis_testdns::{TestDns, Zones};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DOMAIN: &str = "example.test";
const MX: &str = "mx.example.test";

/// Serves `policy` at https://mta-sts.example.test/.well-known/mta-sts.txt on `ip`.
async fn policy_server(ip: Ipv4Addr, ca: &TestCa, policy: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let (port, task, _) = counted_policy_server(ip, ca, policy).await;
    (port, task)
}

/// As [`policy_server`], counting the policy requests served.
async fn counted_policy_server(
    ip: Ipv4Addr,
    ca: &TestCa,
    policy: &'static str,
) -> (u16, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.issue(&["mta-sts.example.test"]).server_config());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(n) if n > 0 => request.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let ok = request.starts_with(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n");
                counter.fetch_add(1, Ordering::SeqCst);
                let response = if ok {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{policy}",
                        policy.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task, served)
}

const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

fn sts_zone(mx_ip: Ipv4Addr, sts_ip: Ipv4Addr) -> Zones {
    zone_with_mx(DOMAIN, mx_ip)
        .txt("_mta-sts.example.test", "v=STSv1; id=20261207T1;")
        .a("mta-sts.example.test", sts_ip)
}

struct StsCase {
    _dns: TestDns,
    _policy: tokio::task::JoinHandle<()>,
    receiver: Receiver,
    courier: portcullis_delivery::RemoteCourier,
}

async fn sts_case(mx_ip: Ipv4Addr, behaviour: Behaviour, ca: &TestCa, policy: &'static str) -> StsCase {
    let sts_ip = Ipv4Addr::new(127, 0, 0, 21);
    let (sts_port, policy_task) = policy_server(sts_ip, ca, policy).await;
    let receiver = Receiver::start(IpAddr::V4(mx_ip), 0, behaviour).await;
    let dns = TestDns::start(sts_zone(mx_ip, sts_ip)).unwrap();
    let mut s = settings(receiver.addr.port());
    s.mta_sts_port = sts_port;
    let courier = courier(&dns, s, std::slice::from_ref(&ca.der));
    StsCase { _dns: dns, _policy: policy_task, receiver, courier }
}

#[tokio::test]
async fn mta_sts_enforce_delivers_over_valid_tls() {
    let ca = TestCa::new("STS Test CA");
    let ip = Ipv4Addr::new(127, 0, 0, 22);
    let behaviour = Behaviour { tls: Some(ca.issue(&[MX]).server_config()), extensions: vec![] };
    let case = sts_case(ip, behaviour, &ca, ENFORCE).await;
    let report = deliver(&case.courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    let attempt = report.attempts.last().unwrap();
    assert_eq!(attempt.policy, PolicyKind::MtaStsEnforce);
    assert_eq!(attempt.certificate, CertificateCheck::Valid);
    assert_eq!(attempt.tls_failure, None);
    assert!(attempt.tls.as_ref().is_some_and(|t| t.version.starts_with("TLSv1.")), "{attempt:?}");
    assert!(case.receiver.messages()[0].tls);
}

#[tokio::test]
async fn mta_sts_enforce_without_starttls_defers_and_sends_nothing() {
    let ca = TestCa::new("STS Test CA");
    let ip = Ipv4Addr::new(127, 0, 0, 23);
    let case = sts_case(ip, Behaviour { tls: None, extensions: vec![] }, &ca, ENFORCE).await;
    let report = deliver(&case.courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Temporary, "{report:#?}");
    assert!(case.receiver.messages().is_empty(), "mail went out in the clear");
    let attempt = report.attempts.last().unwrap();
    assert_eq!(attempt.tls_failure, Some(TlsFailure::StarttlsNotSupported));
    assert_eq!(attempt.policy, PolicyKind::MtaStsEnforce);
}

#[tokio::test]
async fn mta_sts_enforce_with_a_wrong_certificate_defers_and_sends_nothing() {
    let ca = TestCa::new("STS Test CA");
    for (ip, identity, expected) in [
        (23u8, ca.issue(&["other.example.test"]), TlsFailure::CertificateHostMismatch),
        (24, Identity::self_signed(&[MX]), TlsFailure::CertificateNotTrusted),
    ] {
        let ip = Ipv4Addr::new(127, 0, 0, ip);
        let behaviour = Behaviour { tls: Some(identity.server_config()), extensions: vec![] };
        let case = sts_case(ip, behaviour, &ca, ENFORCE).await;
        let report = deliver(&case.courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
        assert_eq!(report.messages[0][0].disposition, Disposition::Temporary, "{report:#?}");
        assert!(case.receiver.messages().is_empty(), "sent despite a bad certificate");
        let attempt = report.attempts.last().unwrap();
        assert_eq!(attempt.certificate, CertificateCheck::Invalid(expected));
        assert_eq!(attempt.tls_failure, Some(expected));
    }
}

#[tokio::test]
async fn mta_sts_testing_reports_but_delivers() {
    let ca = TestCa::new("STS Test CA");
    let ip = Ipv4Addr::new(127, 0, 0, 25);
    let behaviour = Behaviour { tls: Some(Identity::self_signed(&[MX]).server_config()), extensions: vec![] };
    let testing = "version: STSv1\nmode: testing\nmx: mx.example.test\nmax_age: 86400\n";
    let case = sts_case(ip, behaviour, &ca, testing).await;
    let report = deliver(&case.courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered);
    let attempt = report.attempts.last().unwrap();
    assert_eq!(attempt.policy, PolicyKind::MtaStsTesting);
    assert_eq!(attempt.tls_failure, Some(TlsFailure::CertificateNotTrusted));
}

#[tokio::test]
async fn mta_sts_enforce_skips_an_mx_outside_the_policy() {
    let ca = TestCa::new("STS Test CA");
    let ip = Ipv4Addr::new(127, 0, 0, 26);
    let behaviour = Behaviour { tls: Some(ca.issue(&[MX]).server_config()), extensions: vec![] };
    let other = "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n";
    let case = sts_case(ip, behaviour, &ca, other).await;
    let report = deliver(&case.courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Temporary);
    assert!(matches!(&r.why, Why::Policy(why) if why.contains("not an MX host")), "{r:?}");
    assert_eq!(*case.receiver.connections.lock().unwrap(), 0, "no connection to an MX the policy excludes");
    assert!(matches!(report.attempts.last().unwrap().outcome, AttemptOutcome::Skipped(_)));
}

/// DANE: a receiver whose certificate is self-signed, and TLSA records for it.
async fn dane_case(
    ip: Ipv4Addr,
    identity: &Identity,
    tlsa: Vec<(u8, u8, u8, Vec<u8>)>,
    authenticated: bool,
    extensions: Vec<&'static str>,
) -> (TestDns, Receiver, portcullis_delivery::RemoteCourier) {
    let receiver =
        Receiver::start(IpAddr::V4(ip), 0, Behaviour { tls: Some(identity.server_config()), extensions }).await;
    let port = receiver.addr.port();
    let mut zones = zone_with_mx(DOMAIN, ip);
    for (usage, selector, matching, data) in tlsa {
        zones = zones.tlsa(&format!("_{port}._tcp.{MX}"), usage, selector, matching, &data);
    }
    if authenticated {
        zones = zones.authenticated(DOMAIN);
    }
    let dns = TestDns::start(zones).unwrap();
    let courier = courier(&dns, settings(port), &[]);
    (dns, receiver, courier)
}

#[tokio::test]
async fn dane_ee_with_a_matching_tlsa_record_delivers() {
    let identity = Identity::self_signed(&["not-even-the-right-name.test"]);
    let spki = sha256(&identity.leaf_spki());
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 31), &identity, vec![(3, 1, 1, spki)], true, vec![]).await;
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    let attempt = report.attempts.last().unwrap();
    assert_eq!(attempt.policy, PolicyKind::Dane);
    assert_eq!(attempt.certificate, CertificateCheck::Valid);
    assert!(receiver.messages()[0].tls);
}

#[tokio::test]
async fn dane_ta_with_the_issuing_ca_delivers() {
    let ca = TestCa::new("DANE TA");
    let identity = ca.issue(&[MX]);
    let ca_spki_hash = {
        let spki = portcullis_delivery::tls::dane::subject_public_key_info(&ca.der).unwrap().to_vec();
        sha256(&spki)
    };
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 32), &identity, vec![(2, 1, 1, ca_spki_hash)], true, vec![]).await;
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert_eq!(report.attempts.last().unwrap().certificate, CertificateCheck::Valid);
    assert_eq!(receiver.messages().len(), 1);
}

#[tokio::test]
async fn dane_with_a_non_matching_record_defers_and_sends_nothing() {
    let identity = Identity::self_signed(&[MX]);
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 33), &identity, vec![(3, 1, 1, vec![0xab; 32])], true, vec![]).await;
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Temporary, "{report:#?}");
    assert!(receiver.messages().is_empty());
    let attempt = report.attempts.last().unwrap();
    assert_eq!(attempt.policy, PolicyKind::Dane);
    assert_eq!(attempt.tls_failure, Some(TlsFailure::TlsaInvalid));
}

#[tokio::test]
async fn tlsa_without_the_ad_bit_is_ignored() {
    // The same non-matching record, but the resolver did not validate it: no DANE, so the
    // opportunistic session delivers.
    let identity = Identity::self_signed(&[MX]);
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 34), &identity, vec![(3, 1, 1, vec![0xab; 32])], false, vec![]).await;
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert_eq!(report.attempts.last().unwrap().policy, PolicyKind::None);
    assert!(receiver.messages()[0].tls, "STARTTLS is still used");
}

#[tokio::test]
async fn requiretls_goes_only_over_validated_tls_to_a_server_that_offers_it() {
    let identity = Identity::self_signed(&[MX]);
    let spki = sha256(&identity.leaf_spki());
    let mut m = message(&["bob@example.test"]);
    m.params.requiretls = true;
    // DANE-validated and REQUIRETLS offered: sent, with the parameter.
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 35), &identity, vec![(3, 1, 1, spki)], true, vec!["REQUIRETLS"]).await;
    let report = deliver(&courier, DOMAIN, vec![m.clone()]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert!(receiver.messages()[0].mail_from.ends_with(" REQUIRETLS"), "{:?}", receiver.messages());
    // Opportunistic TLS only (no AD bit): returned, never sent.
    let (_dns, receiver, courier) =
        dane_case(Ipv4Addr::new(127, 0, 0, 36), &identity, vec![], false, vec!["REQUIRETLS"]).await;
    let report = deliver(&courier, DOMAIN, vec![m]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Permanent);
    assert_eq!(r.why, Why::Smtp(Reason::Local(LocalReason::RequireTlsUnmet)));
    assert_eq!(r.status.to_string(), "5.7.30");
    assert!(receiver.messages().is_empty());
}

#[tokio::test]
async fn a_null_mx_fails_at_once_and_no_domain_too() {
    let dns = TestDns::start(Zones::new().zone("null.test").mx("null.test", 0, ".")).unwrap();
    let courier = courier(&dns, settings(25), &[]);
    let report = deliver(&courier, "null.test", vec![message(&["x@null.test"])]).await;
    let r = &report.messages[0][0];
    assert_eq!((r.disposition, r.status.to_string().as_str()), (Disposition::Permanent, "5.1.10"));
    assert!(report.attempts.is_empty());
    let report = deliver(&courier, "nowhere.test", vec![message(&["x@nowhere.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Permanent);
}

#[tokio::test]
async fn an_implicit_mx_and_the_next_exchanger_when_the_first_is_down() {
    // example.test: MX 10 at an address nothing listens on, MX 20 the receiver.
    let receiver =
        Receiver::start(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 38)), 0, Behaviour { tls: None, extensions: vec![] }).await;
    let port = receiver.addr.port();
    let zones = Zones::new()
        .zone(DOMAIN)
        .mx(DOMAIN, 10, "down.example.test")
        .a("down.example.test", Ipv4Addr::new(127, 0, 0, 37))
        .mx(DOMAIN, 20, "up.example.test")
        .a("up.example.test", Ipv4Addr::new(127, 0, 0, 38))
        .zone("plain.test")
        .a("plain.test", Ipv4Addr::new(127, 0, 0, 38));
    let dns = TestDns::start(zones).unwrap();
    let courier = courier(&dns, settings(port), &[]);
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert_eq!(report.messages[0][0].remote_mta.as_deref(), Some("up.example.test"));
    assert!(matches!(report.attempts[0].outcome, AttemptOutcome::ConnectFailed(_)), "{:?}", report.attempts);
    let report = deliver(&courier, "plain.test", vec![message(&["bob@plain.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "the domain's own address");
}

#[tokio::test]
async fn the_smart_host_gets_credentials_only_over_verified_tls() {
    let ca = TestCa::new("Relay CA");
    let relay_name = "relay.provider.test";
    let ip = Ipv4Addr::new(127, 0, 0, 39);
    let behaviour =
        Behaviour { tls: Some(ca.issue(&[relay_name]).server_config()), extensions: vec!["AUTH PLAIN LOGIN"] };
    let receiver = Receiver::start(IpAddr::V4(ip), 0, behaviour).await;
    let dns = TestDns::start(Zones::new().zone("provider.test").a(relay_name, ip)).unwrap();
    let mut s = settings(25);
    s.relay = Some(Relay {
        host: relay_name.into(),
        port: receiver.addr.port(),
        implicit_tls: false,
        credentials: Some(Credentials { username: "u".into(), password: "p".to_string().into() }),
    });
    let trusted = courier(&dns, s.clone(), std::slice::from_ref(&ca.der));
    let report = deliver(&trusted, "anywhere.example", vec![message(&["x@anywhere.example"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    assert_eq!(report.attempts[0].policy, PolicyKind::Relay);
    assert_eq!(receiver.messages()[0].auth.as_deref(), Some("AHUAcA=="));
    // Without the CA the relay's certificate is not trusted: no credentials, no mail.
    let untrusting = courier(&dns, s, &[]);
    let report = deliver(&untrusting, "anywhere.example", vec![message(&["x@anywhere.example"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Temporary);
    assert_eq!(receiver.messages().len(), 1);
}

#[tokio::test]
async fn several_messages_share_one_connection_and_the_source_address_is_bound() {
    let ip = Ipv4Addr::new(127, 0, 0, 40);
    let receiver = Receiver::start(IpAddr::V4(ip), 0, Behaviour { tls: None, extensions: vec!["PIPELINING"] }).await;
    let dns = TestDns::start(zone_with_mx(DOMAIN, ip)).unwrap();
    let mut s = settings(receiver.addr.port());
    s.source_ipv4 = Some(Ipv4Addr::new(127, 0, 0, 41));
    let courier = courier(&dns, s, &[]);
    let batch = vec![message(&["a@example.test", "b@example.test"]), message(&["c@example.test"])];
    let report = deliver(&courier, DOMAIN, batch).await;
    assert!(report.messages.iter().flatten().all(|r| r.disposition == Disposition::Delivered), "{report:#?}");
    assert_eq!(*receiver.connections.lock().unwrap(), 1);
    let got = receiver.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_to.len(), 2, "recipients of one domain in one transaction");
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(report.attempts[0].messages, 2);
    assert_eq!(*receiver.peers.lock().unwrap(), [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41))]);
}

#[tokio::test]
async fn an_mta_sts_policy_is_cached_refetched_on_a_new_id_and_kept_when_the_fetch_fails() {
    let ca = TestCa::new("STS Test CA");
    let (mx_ip, sts_ip) = (Ipv4Addr::new(127, 0, 0, 27), Ipv4Addr::new(127, 0, 0, 28));
    let (sts_port, policy_task, served) = counted_policy_server(sts_ip, &ca, ENFORCE).await;
    let behaviour = Behaviour { tls: Some(ca.issue(&[MX]).server_config()), extensions: vec![] };
    let receiver = Receiver::start(IpAddr::V4(mx_ip), 0, behaviour).await;
    let dns = TestDns::start(sts_zone(mx_ip, sts_ip)).unwrap();
    let mut s = settings(receiver.addr.port());
    s.mta_sts_port = sts_port;
    // No DNS cache, so the changed TXT record is seen at once.
    let mut dns_settings = portcullis_dns::DnsSettings::with_servers(vec![dns.addr()]);
    dns_settings.cache_size = 0;
    dns_settings.timeout = std::time::Duration::from_millis(500);
    let resolver = portcullis_dns::Resolver::new(&dns_settings).unwrap();
    let courier = portcullis_delivery::RemoteCourier::new(
        s,
        resolver,
        portcullis_delivery::TrustRoots::new(std::slice::from_ref(&ca.der)).unwrap(),
    );
    for _ in 0..2 {
        let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
        assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    }
    assert_eq!(served.load(Ordering::SeqCst), 1, "the second delivery used the cached policy");

    // A new id in the TXT record: fetched again.
    let new_id = |id: &str| {
        zone_with_mx(DOMAIN, mx_ip)
            .txt("_mta-sts.example.test", &format!("v=STSv1; id={id};"))
            .a("mta-sts.example.test", sts_ip)
    };
    dns.set_zones(new_id("20261207T2"));
    deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // The policy server is gone and the id changes again (an attacker blocking the fetch):
    // the cached enforce policy stays, so a receiver without TLS gets nothing.
    policy_task.abort();
    let port = receiver.addr.port();
    drop(receiver);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await; // the old listener is closed
    let plain = Receiver::start(IpAddr::V4(mx_ip), port, Behaviour { tls: None, extensions: vec![] }).await;
    dns.set_zones(new_id("20261207T3"));
    let report = deliver(&courier, DOMAIN, vec![message(&["bob@example.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Temporary, "{report:#?}");
    assert_eq!(report.attempts.last().unwrap().policy, PolicyKind::MtaStsEnforce);
    assert!(plain.messages().is_empty(), "a blocked policy fetch downgraded the domain");
}

#[tokio::test]
async fn the_smart_host_over_implicit_tls() {
    let ca = TestCa::new("Relay CA");
    let relay_name = "smtps.provider.test";
    let ip = Ipv4Addr::new(127, 0, 0, 42);
    let behaviour =
        Behaviour { tls: Some(ca.issue(&[relay_name]).server_config()), extensions: vec!["AUTH LOGIN PLAIN"] };
    let receiver = Receiver::start_implicit_tls(IpAddr::V4(ip), 0, behaviour).await;
    let dns = TestDns::start(Zones::new().zone("provider.test").a(relay_name, ip)).unwrap();
    let mut s = settings(25);
    s.relay = Some(Relay {
        host: relay_name.into(),
        port: receiver.addr.port(),
        implicit_tls: true,
        credentials: Some(Credentials { username: "u".into(), password: "p".to_string().into() }),
    });
    let courier = courier(&dns, s, std::slice::from_ref(&ca.der));
    let report = deliver(&courier, "anywhere.example", vec![message(&["x@anywhere.example"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    let got = receiver.messages();
    assert!(got[0].tls && got[0].auth.is_some(), "{got:?}");
    assert_eq!(report.attempts[0].certificate, CertificateCheck::Valid);
}
