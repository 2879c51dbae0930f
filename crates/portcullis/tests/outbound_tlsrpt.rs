//! TLS reports (RFC 8460) end to end: A (`[tls_rpt]` on, a period of seconds) delivers to B,
//! whose domain publishes `_smtp._tls` with a `mailto:` address at B; when the period ends, A
//! queues the report and delivers it to B like any mail. Python's email parser reads the
//! message as `multipart/report; report-type="tlsrpt"`, gunzips the attachment, and finds the
//! session in the JSON (§4.4): b.test, no policy, the certificate B's self-signed one that A
//! cannot trust, counted as a failed session of that kind.
//!
//! Needs python3 (the shared skip rule, tests/common/outside.rs).

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mx::stored;
use common::{outside, Settings, TestServer, ALICE, DOMAIN, PASSWORD};
use portcullis_testdns::{TestDns, Zones};

const B_DOMAIN: &str = "b.test";
const CAROL: &str = "carol@b.test";
const REPORTS: &str = "tlsrpt@b.test";
const A_IP: &str = "127.0.0.2";
const B_IP: &str = "127.0.0.3";

fn zones() -> Zones {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    Zones::new()
        .zone(DOMAIN)
        .mx(DOMAIN, 10, &format!("out.{DOMAIN}"))
        .a(&format!("out.{DOMAIN}"), ip(A_IP))
        .txt(DOMAIN, &format!("v=spf1 ip4:{A_IP} -all"))
        .zone(B_DOMAIN)
        .mx(B_DOMAIN, 10, &format!("mx.{B_DOMAIN}"))
        .a(&format!("mx.{B_DOMAIN}"), ip(B_IP))
        .txt(&format!("_smtp._tls.{B_DOMAIN}"), &format!("v=TLSRPTv1; rua=mailto:{REPORTS},https://reports.b.test/"))
}

fn dns_section(dns: &TestDns) -> String {
    format!("[dns]\nservers = [\"{}\"]\ntimeout = \"1s\"\nattempts = 1", dns.addr())
}

const CHECK_REPORT: &str = r#"
import email, gzip, json, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
assert msg.get_param('report-type') == 'tlsrpt', msg.get_param('report-type')
assert msg['TLS-Report-Domain'] == 'b.test', msg['TLS-Report-Domain']
# RFC 8460 §5.3: signed by the reporting domain (the sender's, a local domain with keys).
sigs = msg.get_all('DKIM-Signature') or []
assert any('d=example.test;' in ''.join(str(s).split()) for s in sigs), sigs
assert msg['TLS-Report-Submitter'] == 'mail.example.test', msg['TLS-Report-Submitter']
assert msg['Subject'].startswith('Report Domain: b.test Submitter: mail.example.test Report-ID: <'), msg['Subject']
parts = [p for p in msg.iter_parts() if p.get_content_type() == 'application/tlsrpt+gzip']
assert len(parts) == 1, [p.get_content_type() for p in msg.iter_parts()]
name = parts[0].get_filename()
assert name.startswith('mail.example.test!b.test!') and name.endswith('.json.gz'), name
report = json.loads(gzip.decompress(parts[0].get_payload(decode=True)))
assert report['organization-name'] == 'mail.example.test', report
assert report['contact-info'] == 'alice@example.test', report
assert report['date-range']['start-datetime'] < report['date-range']['end-datetime'], report
assert len(report['policies']) == 1, report
p = report['policies'][0]
assert p['policy']['policy-type'] == 'no-policy-found', p
assert p['policy']['policy-domain'] == 'b.test', p
assert p['policy']['mx-host'] == ['mx.b.test'], p
assert p['summary']['total-failure-session-count'] >= 1, p
details = [d for d in p['failure-details'] if d['result-type'] == 'certificate-not-trusted']
assert details and details[0]['receiving-mx-hostname'] == 'mx.b.test' and details[0]['receiving-ip'] == '127.0.0.3', p
print('ok')
"#;

#[test]
fn a_tls_report_reaches_the_domain_that_asks_for_it() {
    let Some(python) = outside::program("python3", "apt-get install python3") else { return };
    let dns = TestDns::start(zones()).unwrap();
    let b = TestServer::start_with(Settings {
        listen: vec![format!("smtp = [\"{B_IP}:0\"]")],
        sections: vec![dns_section(&dns)],
        ..Settings::default()
    });
    b.cli_ok(&["domain", "add", B_DOMAIN], None);
    for account in [CAROL, REPORTS] {
        b.cli_ok(&["account", "add", account, "--password-stdin"], Some(PASSWORD));
    }
    let a = TestServer::start_with(Settings {
        sections: vec![
            dns_section(&dns),
            format!("[delivery]\nsource_ipv4 = \"{A_IP}\"\nport = {}", b.addr("smtp").port()),
            format!("[tls_rpt]\nenabled = true\nsender = \"{ALICE}\"\nperiod = \"3s\""),
        ],
        ..Settings::default()
    });
    let reply = a.submit(CAROL, &format!("From: <{ALICE}>\r\nTo: <{CAROL}>\r\nSubject: counted\r\n\r\nHello."));
    assert!(reply.starts_with("250 "), "{reply}");
    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt" && e["domain"] == B_DOMAIN);
    assert_eq!(attempt["delivered"], 1, "{attempt}");
    assert_eq!(attempt["tls_failure"], "certificate-not-trusted", "{attempt}");

    let queued = a.wait_event(|e| e["event"] == "tls_report_queued");
    assert_eq!((queued["domain"].as_str(), queued["recipients"].as_u64()), (Some(B_DOMAIN), Some(1)), "{queued}");
    assert!(queued["failed"].as_u64().unwrap() >= 1, "{queued}");
    let started = Instant::now();
    let mut inbox = Vec::new();
    while inbox.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the report never reached {REPORTS}");
        std::thread::sleep(Duration::from_millis(200));
        inbox = stored(&b, REPORTS, "INBOX");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.eml");
    std::fs::write(&file, &inbox[0]).unwrap();
    let out = Command::new(python).arg("-c").arg(CHECK_REPORT).arg(&file).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "the report as Python reads it: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        inbox[0]
    );
    // The sender's mailbox gets nothing: the report was delivered, and NOTIFY=NEVER anyway.
    assert!(stored(&a, ALICE, "INBOX").is_empty());
}
