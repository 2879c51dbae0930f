//! Outbound mail to receivers nobody here wrote (issue 15), through the real server's queue:
//! - Debian's Postfix (a private instance from a temp dir, never the system
//!   service, on 127.0.0.1) receives over STARTTLS, and its log shows the TLS session;
//! - Postfix's `smtp-sink` on 127.0.0.42 answering 4xx (the message is retried with a growing
//!   wait: `queue list` counts the attempts and shows the next one later), 5xx (a failure
//!   notice in the sender's INBOX that Python's email parser reads as multipart/report), and
//!   closing the connection in the middle of DATA (retried, and delivered once when a sink
//!   that takes it is back).
//!
//! Needs root (Postfix and smtp-sink drop privileges), `postfix`, `smtp-sink` and `python3`:
//! otherwise the shared skip rule (tests/common/outside.rs).

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mx::stored;
use common::outbound::{sender, submit, Schedule};
use common::{free_port, outside, wait_for, wait_listening, TestServer, ALICE, DOMAIN};
use portcullis_testdns::{TestDns, Zones};
use portcullis_testpostfix::Postfix;

const A_IP: &str = "127.0.0.2";
/// Postfix checks its `inet_interfaces` against the interfaces' own addresses: 127.0.0.1 only.
const POSTFIX_IP: &str = "127.0.0.1";
const SINK_IP: &str = "127.0.0.42";

/// `domain`'s exchanger `mx.DOMAIN` at `ip`, beside A's own domain.
fn zones(domain: &str, ip: &str) -> Zones {
    let ip = ip.parse::<Ipv4Addr>().unwrap();
    Zones::new()
        .zone(DOMAIN)
        .mx(DOMAIN, 10, &format!("out.{DOMAIN}"))
        .a(&format!("out.{DOMAIN}"), A_IP.parse().unwrap())
        .zone(domain)
        .mx(domain, 10, &format!("mx.{domain}"))
        .a(&format!("mx.{domain}"), ip)
}

/// A: sends from 127.0.0.2 to exchangers on `port`; retries after 2 s, doubling up to 8 s.
fn start_a(dns: &TestDns, port: u16, extra: &str) -> TestServer {
    let schedule = Schedule { retry_first: "2s", retry_max_interval: "8s", expire: "1h" };
    let delivery = format!("source_ipv4 = \"{A_IP}\"\nport = {port}\nreply_timeout = \"10s\"\n{extra}");
    TestServer::start_with(sender(dns, schedule, &delivery))
}

#[test]
fn postfix_receives_over_starttls_and_logs_the_tls_session() {
    if !outside::root("Postfix sets up and drops privileges as root") {
        return;
    }
    let Some(postfix) = outside::program("postfix", "apt-get install postfix") else { return };
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A CA made here, trusted by A (delivery.trust_roots): the verdict is "valid", though
    // without a policy any certificate would do.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Postfix receiver test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["mx.postfix.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let port = free_port(POSTFIX_IP);
    // Postfix receiving mail for postfix.test (STARTTLS offered, with a certificate for
    // mx.postfix.test from a CA made here), throwing it away once taken.
    let pf = Postfix::start_tls_receiver(
        &postfix,
        tmp.path(),
        "postfix.test",
        port,
        &format!("{}{}", leaf.pem(), ca_cert.pem()),
        &leaf_key.serialize_pem(),
    );
    let dns = TestDns::start(zones("postfix.test", POSTFIX_IP)).unwrap();
    let a = start_a(&dns, port, &format!("trust_roots = \"{}\"", ca_file.display()));
    submit(&a, "bob@postfix.test", "to postfix");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["delivered"], 1, "{attempt}\n{}", pf.log());
    assert_eq!(
        (attempt["tls_policy"].as_str(), attempt["tls_result"].as_str()),
        (Some("none"), Some("verified")),
        "{attempt}"
    );
    let version = attempt["tls_version"].as_str().unwrap_or_default().to_string();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{attempt}");
    wait_for("Postfix's log of the TLS session and the delivery", Duration::from_secs(20), || {
        let log = pf.log();
        log.lines().any(|l| l.contains("TLS connection established from") && l.contains(&version))
            && log.contains("status=sent")
    });
    let log = pf.log();
    assert!(log.contains(&format!("from=<{ALICE}>")), "{log}");
    assert!(log.contains("to=<bob@postfix.test>"), "{log}");
}

/// `smtp-sink` on 127.0.0.42:`port` with `options`, appending what it takes to its dump file;
/// killed when dropped.
struct Sink {
    child: Child,
    dump: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    fn start(program: &Path, dir: &Path, port: u16, options: &[&str]) -> Sink {
        let dump = dir.join(format!("dump-{}", options.join("").replace(['/', ' '], "_")));
        let mut command = Command::new(program);
        if common::is_root() {
            command.args(["-u", "nobody"]); // smtp-sink refuses to run as root
        }
        command.arg("-D").arg(&dump).args(options).arg(format!("{SINK_IP}:{port}")).arg("16");
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_listening(SINK_IP, port, "smtp-sink", None);
        Sink { child, dump }
    }

    fn dump(&self) -> String {
        std::fs::read_to_string(&self.dump).unwrap_or_default()
    }
}

/// A temp dir smtp-sink (as nobody) may write its dump into.
fn sink_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn smtp_sink() -> Option<PathBuf> {
    if !outside::root("smtp-sink drops privileges as root, to nobody") {
        return None;
    }
    outside::program("smtp-sink", "apt-get install postfix")
}

/// The `ts_ms` of each event.
fn times(events: &[serde_json::Value]) -> Vec<i64> {
    events.iter().map(|e| e["ts_ms"].as_i64().expect("ts_ms")).collect()
}

#[test]
fn a_4xx_from_smtp_sink_is_retried_with_a_growing_wait() {
    let Some(program) = smtp_sink() else { return };
    let dir = sink_dir();
    let port = free_port(SINK_IP);
    // -r RCPT: every RCPT gets a soft error (450).
    let sink = Sink::start(&program, dir.path(), port, &["-r", "RCPT"]);
    let dns = TestDns::start(zones("sink.test", SINK_IP)).unwrap();
    let a = start_a(&dns, port, "");
    submit(&a, "someone@sink.test", "soft");

    let attempts = a.wait_events(|e| e["event"] == "delivery_attempt", 3);
    let attempts = &attempts[..3];
    for attempt in attempts {
        assert_eq!((attempt["deferred"].as_u64(), attempt["failed"].as_u64()), (Some(1), Some(0)), "{attempt}");
        assert!(attempt["reason"].as_str().is_some_and(|r| r.contains("450")), "{attempt}");
    }
    // retry_first = 2 s, then 4 s (the queue counts in whole seconds, hence the margin).
    let t = times(attempts);
    let (first, second) = (t[1] - t[0], t[2] - t[1]);
    assert!(first >= 1000, "the first wait was {first} ms");
    assert!(second >= 3000 && second > first, "the second wait ({second} ms) is longer than the first ({first} ms)");
    // The queue counts them (the third attempt's record follows its event).
    let counted = |list: &str| -> u64 {
        let line = list.lines().find(|l| l.starts_with("#1 from")).unwrap_or_else(|| panic!("{list}"));
        line.split(" attempt(s)")
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no attempt count in {line}"))
    };
    let mut list = String::new();
    wait_for("three attempts counted in `queue list`", Duration::from_secs(10), || {
        list = a.cli_ok(&["queue", "list"], None);
        counted(&list) >= 3
    });
    assert!(list.contains("someone@sink.test (pending): ") && list.contains("450"), "{list}");
    // The next attempt is later still: after waits of 2, 4 and 8 s, about 14 s after queueing.
    let line = list.lines().find(|l| l.starts_with("#1 from")).unwrap();
    let when = |label: &str| {
        let text = line.split(label).nth(1).and_then(|rest| rest.split([',', ' ']).next()).unwrap_or_default();
        humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{label}{text:?} in {line}: {e}"))
    };
    let ahead = when("next ").duration_since(when("queued ")).unwrap_or_default();
    assert!(ahead >= Duration::from_secs(11), "the next attempt is {ahead:?} after queueing: {line}");
    assert!(stored(&a, ALICE, "INBOX").is_empty(), "no notice while it is retried");
    assert!(!sink.dump().contains("Subject: soft"), "nothing was taken");
}

#[test]
fn a_5xx_from_smtp_sink_gives_a_failure_notice_python_reads_as_a_report() {
    let Some(program) = smtp_sink() else { return };
    let Some(python) = outside::program("python3", "apt-get install python3") else { return };
    let dir = sink_dir();
    let port = free_port(SINK_IP);
    // -f RCPT: every RCPT gets a hard error, with this text.
    let _sink = Sink::start(&program, dir.path(), port, &["-f", "RCPT", "-B", "550 5.1.1 No such user here"]);
    let dns = TestDns::start(zones("sink.test", SINK_IP)).unwrap();
    let a = start_a(&dns, port, "");
    submit(&a, "nobody@sink.test", "hard");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["failed"], 1, "{attempt}");
    let mut inbox = Vec::new();
    wait_for("a notice in alice's INBOX", Duration::from_secs(20), || {
        inbox = stored(&a, ALICE, "INBOX");
        !inbox.is_empty()
    });
    assert_eq!(inbox.len(), 1, "one notice");
    let file = dir.path().join("notice.eml");
    std::fs::write(&file, &inbox[0]).unwrap();
    let script = r#"
import email, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
assert msg.get_param('report-type') == 'delivery-status', msg.get_param('report-type')
parts = list(msg.iter_parts())
assert parts[0].get_content_type() == 'text/plain', parts[0].get_content_type()
status = parts[1]
assert status.get_content_type() == 'message/delivery-status', status.get_content_type()
blocks = status.get_payload()
per_message, recipients = blocks[0], blocks[1:]
assert per_message['Reporting-MTA'].startswith('dns;'), per_message['Reporting-MTA']
assert len(recipients) == 1, len(recipients)
r = recipients[0]
assert r['Final-Recipient'].replace(' ', '') == 'rfc822;nobody@sink.test', r['Final-Recipient']
assert r['Action'] == 'failed', r['Action']
assert r['Status'] == '5.1.1', r['Status']
assert '550 5.1.1 No such user here' in r['Diagnostic-Code'], r['Diagnostic-Code']
assert parts[2].get_content_type() in ('message/rfc822', 'text/rfc822-headers'), parts[2].get_content_type()
print('ok')
"#;
    let out = Command::new(python).arg("-c").arg(script).arg(&file).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "Python's email parser: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        inbox[0]
    );
}

#[test]
fn a_connection_closed_mid_data_is_retried_and_delivered_once() {
    let Some(program) = smtp_sink() else { return };
    let dir = sink_dir();
    let port = free_port(SINK_IP);
    // -q .: hang up instead of answering the end of the data.
    let closing = Sink::start(&program, dir.path(), port, &["-q", "."]);
    let dns = TestDns::start(zones("sink.test", SINK_IP)).unwrap();
    let a = start_a(&dns, port, "");
    submit(&a, "someone@sink.test", "mid-data");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["deferred"], 1, "{attempt}");
    assert!(attempt["reason"].as_str().is_some_and(|r| !r.is_empty()), "{attempt}");
    drop(closing);
    let taking = Sink::start(&program, dir.path(), port, &[]);
    a.wait_event(|e| e["event"] == "delivery_attempt" && e["delivered"] == 1);
    wait_for("the message in the sink's dump", Duration::from_secs(10), || taking.dump().contains("Subject: mid-data"));
    std::thread::sleep(Duration::from_secs(4)); // several ticks of the runner
    assert_eq!(taking.dump().matches("Subject: mid-data").count(), 1, "delivered once: {}", taking.dump());
    assert!(a.cli_ok(&["queue", "list"], None).contains("The queue is empty."));
    assert!(stored(&a, ALICE, "INBOX").is_empty(), "no notice");
}
