//! End to end against a real DNS server on loopback (portcullis-testdns) serving MX, A, SPF,
//! DKIM keys and DMARC records, with messages signed by dkimpy: SPF pass/fail/softfail/
//! temperror, DKIM pass/fail/unparseable key, DMARC reject/quarantine/none with relaxed
//! alignment, ARC, FCrDNS, the sender-domain check, DNSBL, hostile DNS (silent, garbled,
//! huge records) and the stamped message.

mod support;

use portcullis_dns::{DnsSettings, Resolver};
use portcullis_sender_auth::*;
use portcullis_testdns::{Fault, TestDns, Zones};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOSTNAME: &str = "mx.portcullis.test";
/// The client in every test: 192.0.2.1 (TEST-NET-1), named mail.example.net.
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

struct Keys {
    rsa: support::Key,
    ed25519: support::Key,
}

/// One RSA and one Ed25519 key for the whole test binary (RSA generation is slow).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sender-auth-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Keys { rsa: support::keygen("rsa", &dir), ed25519: support::keygen("ed25519", &dir) }
    })
}

fn zones() -> Zones {
    let keys = keys();
    let huge_spf = {
        // 1,500 mechanisms (about 25 KB, over TCP), the client's address last: only a record
        // read whole lets it pass.
        let mut record = String::from("v=spf1");
        for i in 0..1500 {
            record.push_str(&format!(" ip4:10.{}.{}.0/24", i / 250, i % 250));
        }
        record.push_str(" ip4:192.0.2.1 -all");
        record
    };
    Zones::new()
        .zone("example.net")
        .mx("example.net", 10, "mx.example.net")
        .a("mx.example.net", Ipv4Addr::new(192, 0, 2, 50))
        .txt("example.net", "v=spf1 ip4:192.0.2.0/25 -all")
        .txt("_dmarc.example.net", "v=DMARC1; p=reject")
        .txt("rsa._domainkey.example.net", &format!("v=DKIM1; k=rsa; p={}", keys.rsa.public))
        .txt("ed._domainkey.example.net", &format!("v=DKIM1; k=ed25519; p={}", keys.ed25519.public))
        .txt("bad._domainkey.example.net", "v=DKIM1; k=rsa; p=%%not base64%%")
        .txt("junk._domainkey.example.net", "v=DKIM1; k=rsa; p=AAAAbase64butnotakey")
        .a("mail.example.net", CLIENT)
        .txt("mail.example.net", "v=spf1 a -all")
        .txt("bounces.example.net", "v=spf1 ip4:192.0.2.1 -all")
        .ptr(IpAddr::V4(CLIENT), "mail.example.net")
        .ptr(IpAddr::V4(STRANGER), "liar.example.net") // no A record: FCrDNS fails
        .zone("quarantine.test")
        .txt("quarantine.test", "v=spf1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .zone("watch.test")
        .txt("watch.test", "v=spf1 -all")
        .txt("_dmarc.watch.test", "v=DMARC1; p=none; rua=mailto:d@watch.test")
        .zone("nodmarc.test")
        .txt("nodmarc.test", "v=spf1 -all")
        .zone("soft.test")
        .txt("soft.test", "v=spf1 ~all")
        .zone("huge.test")
        .txt("huge.test", &huge_spf)
        .zone("slow.test")
        .txt("slow.test", "v=spf1 -all")
        .zone("nullmx.test")
        .mx("nullmx.test", 0, ".")
        .zone("aonly.test")
        .a("aonly.test", Ipv4Addr::new(192, 0, 2, 77))
        .zone("bl.test")
        .a("1.2.0.192.bl.test", Ipv4Addr::new(127, 0, 0, 2))
}

fn authenticator(dns: &TestDns, settings: AuthSettings) -> Authenticator {
    let dns_settings =
        DnsSettings { timeout: Duration::from_millis(300), attempts: 2, ..DnsSettings::with_servers(vec![dns.addr()]) };
    Authenticator::new(Resolver::new(&dns_settings).unwrap(), settings)
}

fn settings() -> AuthSettings {
    AuthSettings { deadline: Duration::from_secs(10), ..AuthSettings::new(HOSTNAME) }
}

fn message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <{from}>\r\nTo: rcpt@portcullis.test\r\nSubject: a test\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <t1@example.net>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn envelope(ip: Ipv4Addr, mail_from: &str) -> Envelope {
    Envelope { client_ip: IpAddr::V4(ip), helo: "mail.example.net".into(), mail_from: mail_from.into() }
}

fn code(decision: &Decision) -> (u16, &'static str) {
    match decision {
        Decision::Reject(reply) | Decision::TempFail(reply) => (reply.code, reply.enhanced),
        other => panic!("a refusal expected, got {other:?}"),
    }
}

#[tokio::test]
async fn everything_passes_for_an_authorised_signed_message() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let signed = support::sign(&keys().rsa, "example.net", "rsa", "rsa-sha256", &message("alice@example.net", "hello"));
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &signed, None).await;
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Pass);
    assert_eq!(verdict.spf_helo.result, SpfResult::Pass);
    assert_eq!(verdict.dkim.len(), 1);
    assert_eq!(verdict.dkim[0].result, DkimResult::Pass, "{:?}", verdict.dkim[0]);
    assert_eq!((verdict.dkim[0].domain.as_str(), verdict.dkim[0].algorithm.as_str()), ("example.net", "rsa-sha256"));
    assert_eq!(verdict.dmarc.result, DmarcResult::Pass);
    assert_eq!(verdict.dmarc.policy, Some(DmarcPolicy::Reject));
    assert!(verdict.dmarc.spf_aligned && verdict.dmarc.dkim_aligned);
    assert_eq!(verdict.iprev.result, IprevResult::Pass);
    assert_eq!(verdict.iprev.names, vec!["mail.example.net".to_string()]);
    assert_eq!(verdict.arc.result, ArcResult::None);
    assert_eq!(auth.decide(&verdict), Decision::Accept);
}

#[tokio::test]
async fn an_ed25519_signature_from_dkimpy_verifies() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let signed =
        support::sign(&keys().ed25519, "example.net", "ed", "ed25519-sha256", &message("alice@example.net", "hi"));
    // From an unauthorised address: DMARC passes on the aligned DKIM signature alone.
    let verdict = auth.verify(&envelope(STRANGER, "alice@example.net"), &signed, None).await;
    assert_eq!(verdict.dkim[0].result, DkimResult::Pass, "{:?}", verdict.dkim[0]);
    assert_eq!(verdict.dkim[0].algorithm, "ed25519-sha256");
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Fail);
    assert_eq!(verdict.dmarc.result, DmarcResult::Pass);
    assert!(verdict.dmarc.dkim_aligned && !verdict.dmarc.spf_aligned);
    assert_eq!(auth.decide(&verdict), Decision::Accept);
}

#[tokio::test]
async fn a_tampered_body_fails_dkim_and_p_reject_refuses_it() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let signed =
        support::sign(&keys().rsa, "example.net", "rsa", "rsa-sha256", &message("alice@example.net", "pay 10"));
    let tampered = String::from_utf8(signed).unwrap().replace("pay 10", "pay 99").into_bytes();
    let verdict = auth.verify(&envelope(STRANGER, "alice@example.net"), &tampered, None).await;
    assert_eq!(verdict.dkim[0].result, DkimResult::Fail);
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Fail);
    assert_eq!(verdict.dmarc.result, DmarcResult::Fail);
    let decision = auth.decide(&verdict);
    assert_eq!(code(&decision), (550, "5.7.1"));
    assert_eq!(decision.reason(), Some(Reason::DmarcReject));
    let summary = Summary::new(&verdict, &decision);
    assert_eq!((summary.dkim, summary.dmarc, summary.decision), ("fail", "fail", "reject"));
}

#[tokio::test]
async fn keys_that_do_not_parse_never_pass() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let signed = support::sign(&keys().rsa, "example.net", "bad", "rsa-sha256", &message("alice@example.net", "x"));
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &signed, None).await;
    // RFC 6376 §6.1.2: a key record that does not parse is a PERMFAIL.
    assert_eq!(verdict.dkim[0].result, DkimResult::PermError, "{:?}", verdict.dkim[0]);
    // SPF still passes aligned: DMARC passes, the message is accepted.
    assert_eq!(verdict.dmarc.result, DmarcResult::Pass);
    assert_eq!(auth.decide(&verdict), Decision::Accept);

    // Valid base64 that is no RSA key: the library only finds out when verifying.
    let signed = support::sign(&keys().rsa, "example.net", "junk", "rsa-sha256", &message("alice@example.net", "x"));
    let verdict = auth.verify(&envelope(STRANGER, "alice@example.net"), &signed, None).await;
    assert_eq!(verdict.dkim[0].result, DkimResult::Fail, "{:?}", verdict.dkim[0]);
    assert_eq!(code(&auth.decide(&verdict)), (550, "5.7.1"));
}

#[tokio::test]
async fn relaxed_alignment_accepts_a_subdomain_bounce_address() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let verdict =
        auth.verify(&envelope(CLIENT, "bounce@bounces.example.net"), &message("alice@example.net", "x"), None).await;
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Pass);
    assert_eq!(verdict.spf_mail_from.domain, "bounces.example.net");
    assert_eq!(verdict.dmarc.result, DmarcResult::Pass);
    assert!(verdict.dmarc.spf_aligned);
}

#[tokio::test]
async fn dmarc_quarantine_goes_to_junk_and_p_none_is_accepted() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let verdict = auth.verify(&envelope(CLIENT, "a@quarantine.test"), &message("a@quarantine.test", "x"), None).await;
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Fail);
    assert_eq!((verdict.dmarc.result, verdict.dmarc.policy), (DmarcResult::Fail, Some(DmarcPolicy::Quarantine)));
    assert_eq!(auth.decide(&verdict), Decision::AcceptToJunk { reason: Reason::DmarcQuarantine });

    let verdict = auth.verify(&envelope(CLIENT, "a@watch.test"), &message("a@watch.test", "x"), None).await;
    assert_eq!((verdict.dmarc.result, verdict.dmarc.policy), (DmarcResult::Fail, Some(DmarcPolicy::None)));
    assert_eq!(auth.decide(&verdict), Decision::Accept);
}

#[tokio::test]
async fn spf_fail_without_dmarc_is_refused_softfail_is_not() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let verdict = auth.verify(&envelope(CLIENT, "a@nodmarc.test"), &message("a@nodmarc.test", "x"), None).await;
    assert_eq!((verdict.spf_mail_from.result, verdict.dmarc.result), (SpfResult::Fail, DmarcResult::None));
    assert_eq!(code(&auth.decide(&verdict)), (550, "5.7.23"));

    let verdict = auth.verify(&envelope(CLIENT, "a@soft.test"), &message("a@soft.test", "x"), None).await;
    assert_eq!(verdict.spf_mail_from.result, SpfResult::SoftFail);
    assert_eq!(auth.decide(&verdict), Decision::Accept);

    let lenient = AuthSettings { policy: Policy { spf_fail: FailureAction::Junk, ..Policy::default() }, ..settings() };
    let auth = authenticator(&dns, lenient);
    let verdict = auth.verify(&envelope(CLIENT, "a@nodmarc.test"), &message("a@nodmarc.test", "x"), None).await;
    assert_eq!(auth.decide(&verdict), Decision::AcceptToJunk { reason: Reason::SpfFail });
}

#[tokio::test]
async fn a_second_author_domain_does_not_escape_p_reject() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    // Authorised for soft.test (no DMARC), claiming to be from example.net too.
    let message = b"From: a@soft.test, boss@example.net\r\nSender: a@soft.test\r\nSubject: x\r\n\r\nbody\r\n";
    let verdict = auth.verify(&envelope(STRANGER, "a@soft.test"), message, None).await;
    assert_eq!((verdict.dmarc.result, verdict.dmarc.from_domain.as_str()), (DmarcResult::Fail, "example.net"));
    assert_eq!(code(&auth.decide(&verdict)), (550, "5.7.1"));
}

#[tokio::test]
async fn an_arc_set_sealed_by_dkimpy_verifies() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let mut relayed = b"Authentication-Results: lists.example.net; spf=pass smtp.mailfrom=example.net\r\n".to_vec();
    relayed.extend(message("alice@example.net", "via a list"));
    let sealed = support::arc_sign(&keys().rsa, "example.net", "rsa", "lists.example.net", &relayed);
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &sealed, None).await;
    assert_eq!((verdict.arc.result, verdict.arc.sets), (ArcResult::Pass, 1), "{:?}", verdict.arc);
    let broken = String::from_utf8(sealed).unwrap().replace("via a list", "via a liar").into_bytes();
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &broken, None).await;
    assert_eq!(verdict.arc.result, ArcResult::Fail, "{:?}", verdict.arc);
}

#[tokio::test]
async fn spf_temperror_is_451_within_bounded_time() {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault_for("slow.test", Fault::Silent);
    let auth = authenticator(&dns, settings());
    let started = Instant::now();
    let verdict = auth.verify(&envelope(CLIENT, "a@slow.test"), &message("a@slow.test", "x"), None).await;
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(verdict.spf_mail_from.result, SpfResult::TempError);
    let decision = auth.decide(&verdict);
    assert_eq!(code(&decision), (451, "4.7.24"));
    assert!(matches!(decision, Decision::TempFail(_)));
}

/// A DNS server that never answers, or only answers garbage: every method is undecided,
/// and the message gets a 451, never an accept or a 5yz, within a bounded time.
#[tokio::test]
async fn hostile_dns_servers_lead_to_451_within_bounded_time() {
    for fault in [Fault::Silent, Fault::Malformed, Fault::ServFail] {
        let dns = TestDns::start(zones()).unwrap();
        dns.set_fault(Some(fault));
        let auth = authenticator(&dns, settings());
        let signed = support::sign(&keys().rsa, "example.net", "rsa", "rsa-sha256", &message("alice@example.net", "x"));
        let started = Instant::now();
        let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &signed, None).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{fault:?} took {took:?}");
        assert_eq!(verdict.spf_mail_from.result, SpfResult::TempError, "{fault:?}");
        assert_eq!(verdict.dkim[0].result, DkimResult::TempError, "{fault:?}");
        assert_eq!(verdict.dmarc.result, DmarcResult::TempError, "{fault:?}");
        assert_eq!(verdict.iprev.result, IprevResult::TempError, "{fault:?}");
        assert_eq!(code(&auth.decide(&verdict)), (451, "4.7.1"), "{fault:?}");
    }
}

#[tokio::test]
async fn the_deadline_bounds_the_checks_of_one_message() {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault(Some(Fault::Silent));
    // A resolver that would wait 4 s per query, twice: the 1 s deadline cuts it short.
    let dns_settings =
        DnsSettings { timeout: Duration::from_secs(4), attempts: 2, ..DnsSettings::with_servers(vec![dns.addr()]) };
    let settings = AuthSettings { deadline: Duration::from_secs(1), ..settings() };
    let auth = Authenticator::new(Resolver::new(&dns_settings).unwrap(), settings);
    let started = Instant::now();
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &message("alice@example.net", "x"), None).await;
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(verdict.spf_mail_from.result, SpfResult::TempError);
    assert_eq!(verdict.dmarc.result, DmarcResult::TempError);
    assert!(matches!(auth.decide(&verdict), Decision::TempFail(_)));
}

/// A DKIM check the deadline cut short is a temperror: it makes DMARC undecided only when
/// the signature is aligned with a domain whose record enforces; otherwise the rest decides.
#[tokio::test]
async fn a_dkim_check_cut_by_the_deadline_matters_only_under_an_enforcing_policy() {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault_for("slow._domainkey.example.net", Fault::Silent);
    dns.set_fault_for("slow._domainkey.nodmarc.test", Fault::Silent);
    // The key lookups would wait 6 s; the deadline is 1.2 s.
    let dns_settings =
        DnsSettings { timeout: Duration::from_secs(6), attempts: 1, ..DnsSettings::with_servers(vec![dns.addr()]) };
    let settings = AuthSettings { deadline: Duration::from_millis(1200), ..settings() };
    let auth = Authenticator::new(Resolver::new(&dns_settings).unwrap(), settings);

    // No DMARC record: the unfinished signature cannot matter; SPF -all refuses.
    let signed = support::sign(&keys().rsa, "nodmarc.test", "slow", "rsa-sha256", &message("a@nodmarc.test", "x"));
    let started = Instant::now();
    let verdict = auth.verify(&envelope(CLIENT, "a@nodmarc.test"), &signed, None).await;
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(verdict.dkim[0].result, DkimResult::TempError, "{:?}", verdict.dkim);
    assert_eq!(verdict.dmarc.result, DmarcResult::None);
    assert_eq!(code(&auth.decide(&verdict)), (550, "5.7.23"));

    // p=reject and an unauthorised client: the aligned signature might have passed.
    let signed = support::sign(&keys().rsa, "example.net", "slow", "rsa-sha256", &message("alice@example.net", "x"));
    let verdict = auth.verify(&envelope(STRANGER, "alice@example.net"), &signed, None).await;
    assert_eq!(verdict.dkim[0].result, DkimResult::TempError);
    assert_eq!(verdict.dmarc.result, DmarcResult::TempError);
    assert_eq!(code(&auth.decide(&verdict)), (451, "4.7.1"));

    // The same with an authorised client: SPF passes aligned, DMARC passes without DKIM.
    let verdict = auth.verify(&envelope(CLIENT, "alice@example.net"), &signed, None).await;
    assert_eq!(verdict.dmarc.result, DmarcResult::Pass);
    assert_eq!(auth.decide(&verdict), Decision::Accept);
}

#[tokio::test]
async fn a_huge_spf_record_is_read_whole() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let verdict = auth.verify(&envelope(CLIENT, "a@huge.test"), &message("a@huge.test", "x"), None).await;
    assert_eq!(verdict.spf_mail_from.result, SpfResult::Pass);
    assert!(dns.asked().iter().any(|a| a.name == "huge.test" && a.tcp), "fetched over TCP");
}

#[tokio::test]
async fn fcrdns_fails_for_a_name_that_does_not_point_back() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let client = auth.check_client(IpAddr::V4(STRANGER)).await;
    assert_eq!(client.iprev.result, IprevResult::Fail);
    assert_eq!(client.iprev.names, vec!["liar.example.net".to_string()]);
    let nobody = auth.check_client("203.0.113.5".parse().unwrap()).await;
    assert_eq!(nobody.iprev.result, IprevResult::PermError);
    assert!(nobody.dnsbl.is_empty(), "DNSBL is off by default");
    assert_eq!(nobody.decision, Decision::Accept);
}

#[tokio::test]
async fn dnsbl_listed_clients_are_refused_when_zones_are_configured() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, AuthSettings { dnsbl_zones: vec!["bl.test".into()], ..settings() });
    let listed = auth.check_client(IpAddr::V4(CLIENT)).await;
    assert_eq!(listed.dnsbl[0].result, DnsblResult::Listed { codes: vec![Ipv4Addr::new(127, 0, 0, 2)] });
    assert_eq!(code(&listed.decision), (554, "5.7.1"));
    let clean = auth.check_client(IpAddr::V4(STRANGER)).await;
    assert_eq!(clean.dnsbl[0].result, DnsblResult::NotListed);
    assert_eq!(clean.decision, Decision::Accept);
    dns.set_fault_for("7.100.51.198.bl.test", Fault::Silent);
    let auth = authenticator(&dns, AuthSettings { dnsbl_zones: vec!["bl.test".into()], ..settings() });
    let unknown = auth.check_client(IpAddr::V4(STRANGER)).await;
    assert!(matches!(unknown.dnsbl[0].result, DnsblResult::Failed(_)));
    assert_eq!(unknown.decision, Decision::Accept, "an unreachable list does not stop mail");
}

#[tokio::test]
async fn sender_domains_without_a_way_back_are_refused_at_mail_from() {
    let dns = TestDns::start(zones()).unwrap();
    dns.set_fault_for("slow.test", Fault::Silent);
    let auth = authenticator(&dns, settings());
    let (check, decision) = auth.check_sender("a@nullmx.test").await;
    assert_eq!(check.outcome, SenderDomain::NullMx);
    assert_eq!(code(&decision), (550, "5.7.27"));
    let (check, decision) = auth.check_sender("a@aonly.test").await;
    assert_eq!((check.outcome, decision), (SenderDomain::Routable, Decision::Accept));
    let (check, decision) = auth.check_sender("a@example.net").await;
    assert_eq!((check.outcome, decision), (SenderDomain::Routable, Decision::Accept));
    let (check, decision) = auth.check_sender("a@gone.test").await;
    assert_eq!(check.outcome, SenderDomain::Unroutable);
    assert_eq!(code(&decision), (550, "5.1.8"));
    let (check, decision) = auth.check_sender("").await;
    assert_eq!((check.outcome, decision), (SenderDomain::NullSender, Decision::Accept));
    let started = Instant::now();
    let (check, decision) = auth.check_sender("a@slow.test").await;
    assert!(matches!(check.outcome, SenderDomain::Temporary(_)), "{check:?}");
    assert_eq!(code(&decision), (451, "4.4.3"));
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_stored_message_carries_our_verdict_and_no_forged_one() {
    let dns = TestDns::start(zones()).unwrap();
    let auth = authenticator(&dns, settings());
    let mut incoming =
        format!("Authentication-Results: {HOSTNAME}; dmarc=pass header.from=example.net\r\n").into_bytes();
    incoming.extend(b"Authentication-Results: other.example; spf=pass\r\n");
    incoming.extend(message("a@nodmarc.test", "x"));
    let verdict = auth.verify(&envelope(CLIENT, "a@nodmarc.test"), &incoming, None).await;
    let stored = String::from_utf8(auth.stamp(&verdict, &incoming)).unwrap();
    assert!(
        stored.starts_with(&format!("Authentication-Results: {HOSTNAME};\r\n\tspf=fail smtp.mailfrom=a@nodmarc.test;"))
    );
    assert_eq!(stored.matches(&format!("Authentication-Results: {HOSTNAME};")).count(), 1, "{stored}");
    assert!(!stored.contains("dmarc=pass"), "the forged verdict is gone: {stored}");
    assert!(stored.contains("Authentication-Results: other.example; spf=pass\r\n"));
    assert!(stored.contains("\r\nReceived-SPF: fail (mx.portcullis.test: domain of nodmarc.test does not designate"));
    assert!(stored.ends_with("\r\n\r\nx\r\n"));
}
