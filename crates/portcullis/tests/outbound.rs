//! Outbound mail end to end (issue 15), against real processes on loopback: instance A
//! (submission, its outbound connections from 127.0.0.2) hands mail to instance B (port 25 on
//! 127.0.0.3) found through an MX record served by `portcullis_testdns`, signed with A's DKIM
//! keys (issue 18), which B and dkimpy verify against the records `portcullis dns` printed,
//! DMARC passing; a domain without keys sends unsigned and says so; a destination that
//! refuses with 5xx gives the sender a failure notice; one that answers 4xx is tried again;
//! a message queued when A is killed with SIGKILL is delivered once after the restart; an
//! account whose mail bounces en masse raises an alert.
//! The refusing, deferring and counting destinations are small SMTP sinks written here; the
//! operator's `queue list|show|retry|hold|release|remove` is checked on the deferred message. The sender's
//! RFC 3461 choices (NOTIFY, RET, ENVID, ORCPT) shape the notices, and REQUIRETLS (RFC 8689)
//! keeps a message from a server that cannot promise TLS.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::mx::stored;
use common::outbound::{queued, sender, submit, Answer, Schedule, Sink};
use common::{dns_section, Settings, TestServer, ALICE, DOMAIN, PASSWORD};
use portcullis_testdns::{TestDns, Zones};

const B_DOMAIN: &str = "b.test";
const CAROL: &str = "carol@b.test";
const A_IP: &str = "127.0.0.2";
const B_IP: &str = "127.0.0.3";
/// Answers every RCPT with 550.
const REFUSING: (&str, &str) = ("refusing.test", "127.0.0.4");
/// Answers every RCPT with 451.
const DEFERRING: (&str, &str) = ("deferring.test", "127.0.0.5");
/// Nothing listens at first; later a sink that takes everything.
const LATER: (&str, &str) = ("later.test", "127.0.0.6");
/// A sink that takes everything, in plaintext only (no STARTTLS, no REQUIRETLS).
const PLAIN: (&str, &str) = ("plain.test", "127.0.0.7");

fn zones() -> Zones {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mut zones = Zones::new()
        // A's own domain: routable, and 127.0.0.2 may send for it (SPF), so B accepts it.
        .zone(DOMAIN)
        .mx(DOMAIN, 10, &format!("mail.{DOMAIN}"))
        .a(&format!("mail.{DOMAIN}"), ip(A_IP))
        .txt(DOMAIN, &format!("v=spf1 ip4:{A_IP} -all"));
    for (domain, address) in [(B_DOMAIN, B_IP), REFUSING, DEFERRING, LATER, PLAIN] {
        zones = zones.zone(domain).mx(domain, 10, &format!("mx.{domain}")).a(&format!("mx.{domain}"), ip(address));
    }
    zones
}

/// B: port 25 on 127.0.0.3, with carol in b.test.
fn start_b(dns: &TestDns) -> TestServer {
    let b = TestServer::start_with(Settings {
        listen: vec![format!("smtp = [\"{B_IP}:0\"]")],
        sections: vec![dns_section(dns.addr())],
        ..Settings::default()
    });
    b.cli_ok(&["domain", "add", B_DOMAIN], None);
    b.cli_ok(&["account", "add", CAROL, "--password-stdin"], Some(PASSWORD));
    b
}

/// A: sends from 127.0.0.2 to exchangers on `port`, retrying after a second.
fn a_settings(dns: &TestDns, port: u16) -> Settings {
    let schedule = Schedule { retry_first: "1s", retry_max_interval: "1s", expire: "1h" };
    sender(dns, schedule, &format!("source_ipv4 = \"{A_IP}\"\nport = {port}"))
}

fn start_a(dns: &TestDns, port: u16) -> TestServer {
    TestServer::start_with(a_settings(dns, port))
}

/// A, with `guard` lines added to its config.
fn start_a_with_guard(dns: &TestDns, port: u16, guard: &str) -> TestServer {
    let mut settings = a_settings(dns, port);
    settings.sections.push(format!("[guard]\n{guard}"));
    TestServer::start_with(settings)
}

/// A destination that answers every RCPT with `rcpt`, counting the messages it took.
fn sink(ip: &str, port: u16, rcpt: &'static str) -> std::sync::Arc<Sink> {
    Sink::start(ip, port, Answer::Rcpt(rcpt))
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    common::wait_for(what, Duration::from_secs(30), done);
}

/// The TXT records among zone-file lines (`NAME TTL IN TXT "…" "…"`), the strings joined:
/// (owner without the final dot, text).
fn txt_records(zone: &str) -> Vec<(String, String)> {
    zone.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(' ')?;
            let (_, quoted) = rest.split_once(" IN TXT ")?;
            let text: String = quoted.split('"').skip(1).step_by(2).collect();
            Some((name.trim_end_matches('.').to_string(), text))
        })
        .collect()
}

/// Every DKIM signature of `message` checked by dkimpy, an implementation nobody here wrote,
/// with the keys from `records` (no DNS); `None` (after a SKIPPED notice) without dkimpy.
fn dkimpy_verdicts(message: &str, records: &[(String, String)]) -> Option<Vec<bool>> {
    use common::outside::{program, python_module};
    let python = program("python3", "apt-get install python3")?;
    if !python_module(&python, "dkim", "apt-get install python3-dkim python3-nacl (or pip install dkimpy pynacl)")
        || !python_module(&python, "nacl", "apt-get install python3-nacl (dkimpy needs it for Ed25519)")
    {
        return None;
    }
    const SCRIPT: &str = r#"
import json, re, sys, dkim
records = json.loads(sys.argv[1])
def dnsfunc(name, timeout=5):
    text = records.get(name.decode().rstrip("."))
    return text.encode() if text is not None else None
message = sys.stdin.buffer.read()
header = message.split(b"\r\n\r\n", 1)[0]
count = len(re.findall(rb"^DKIM-Signature:", header, re.I | re.M))
def verify(idx):
    try:
        return dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException:  # a body hash mismatch is raised, not returned
        return False
print(json.dumps([verify(i) for i in range(count)]))
"#;
    let records: serde_json::Map<String, serde_json::Value> =
        records.iter().map(|(name, text)| (name.clone(), text.clone().into())).collect();
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT, &serde_json::Value::Object(records).to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dkimpy failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn mail_from_a_user_on_a_reaches_a_user_on_b_signed_and_checked() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let a = start_a(&dns, b.addr("smtp").port());
    // A's DKIM records as `portcullis dns` prints them (the pair `domain add` made), and a
    // DMARC policy that rejects what fails, published in the zone B asks.
    let printed = a.cli_ok(&["dns", DOMAIN], None);
    let dkim: Vec<(String, String)> =
        txt_records(&printed).into_iter().filter(|(name, _)| name.contains("._domainkey.")).collect();
    assert_eq!(dkim.len(), 2, "an Ed25519 and an RSA record:\n{printed}");
    let mut published = zones().txt(&format!("_dmarc.{DOMAIN}"), "v=DMARC1; p=reject");
    for (name, text) in &dkim {
        published = published.txt(name, text);
    }
    dns.set_zones(published);
    submit(&a, CAROL, "across");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!((attempt["domain"].as_str(), attempt["delivered"].as_u64()), (Some(B_DOMAIN), Some(1)), "{attempt}");
    assert_eq!(attempt["host"], format!("mx.{B_DOMAIN}"));
    assert!(attempt["tls_version"].as_str().is_some_and(|t| t.starts_with("TLSv1.")), "STARTTLS was used: {attempt}");
    // No MTA-STS or DANE for b.test: opportunistic TLS, whose certificate nobody checks.
    assert_eq!((attempt["tls_policy"].as_str(), attempt["tls_result"].as_str()), (Some("none"), Some("encrypted")));
    assert_eq!(attempt["outcomes"], serde_json::json!([{"result": "delivered", "reason": "delivered", "count": 1}]));
    let metrics = a.http("GET", "/metrics", Some(&a.admin_token()), None).body;
    for line in [
        r#"portcullis_outbound_tls_total{policy="none",result="encrypted"} 1"#,
        r#"portcullis_outbound_recipients_total{result="delivered",reason="delivered"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    let verdict = b.wait_event(|e| e["event"] == "sender_verdict");
    assert_eq!((verdict["spf"].as_str(), verdict["dkim"].as_str()), (Some("pass"), Some("pass")), "{verdict}");
    assert_eq!((verdict["dmarc"].as_str(), verdict["decision"].as_str()), (Some("pass"), Some("accept")), "{verdict}");
    assert_eq!(verdict["dkim_domains"], serde_json::json!([DOMAIN, DOMAIN]), "both signatures passed: {verdict}");
    assert!(a.events().iter().all(|e| e["event"] != "message_unsigned"), "A signed it");

    let mut inbox = Vec::new();
    wait_for("the message in carol's INBOX", || {
        inbox = stored(&b, CAROL, "INBOX");
        !inbox.is_empty()
    });
    let message = &inbox[0];
    assert!(message.contains("Subject: across"), "{message}");
    assert!(message.contains(&format!("(authenticated as {ALICE})")), "A's Received names the account: {message}");
    let results = message.lines().skip_while(|l| !l.starts_with("Authentication-Results:")).take(8).collect::<String>();
    for result in ["spf=pass", &format!("dkim=pass header.d={DOMAIN}"), "dmarc=pass"] {
        assert!(results.contains(result), "{result} missing from B's Authentication-Results: {message}");
    }
    let signatures: Vec<&str> = message.lines().filter(|l| l.starts_with("DKIM-Signature:")).collect();
    assert_eq!(signatures.len(), 2, "{message}");
    let algorithms = ["a=rsa-sha256", "a=ed25519-sha256"];
    for (field, algorithm) in message.split("DKIM-Signature:").skip(1).zip(algorithms) {
        assert!(field.contains(algorithm), "RSA on top, then Ed25519: {message}");
    }
    // Delivered: out of A's queue, and no notice for alice.
    wait_for("an empty queue", || queued(&a) == 0);
    assert!(stored(&a, ALICE, "INBOX").is_empty());

    // The stored message verifies with dkimpy too, both signatures, with the printed records;
    // and a changed body does not.
    if let Some(verdicts) = dkimpy_verdicts(message, &dkim) {
        assert_eq!(verdicts, [true, true], "dkimpy on\n{message}");
        let changed = message.replace("Hello ", "Hullo ");
        assert_eq!(dkimpy_verdicts(&changed, &dkim).unwrap(), [false, false]);
    }
}

#[test]
fn a_domain_without_keys_sends_unsigned_and_says_so() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let a = start_a(&dns, b.addr("smtp").port());
    // As a store from before keys existed: no key of the domain signs (all retired at once, in
    // the past, which the running server hears of through the keys' generation).
    a.with_store(async |store| store.add_dkim_keys(DOMAIN, Vec::new(), Some(1)).await.unwrap());
    submit(&a, CAROL, "plain");
    let unsigned = a.wait_event(|e| e["event"] == "message_unsigned");
    assert_eq!((unsigned["reason"].as_str(), unsigned["from_domain"].as_str()), (Some("no_key"), Some(DOMAIN)));
    let verdict = b.wait_event(|e| e["event"] == "sender_verdict");
    assert_eq!((verdict["spf"].as_str(), verdict["dkim"].as_str()), (Some("pass"), Some("none")), "{verdict}");
}

#[test]
fn a_permanent_refusal_gives_the_sender_a_failure_notice() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    sink(REFUSING.1, port, "550 5.1.1 no such user here");
    let a = start_a(&dns, port);
    let to = format!("nobody@{}", REFUSING.0);
    submit(&a, &to, "doomed");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["failed"], 1, "{attempt}");
    // The sink offers no STARTTLS: plaintext, as opportunistic TLS allows.
    assert_eq!((attempt["tls_policy"].as_str(), attempt["tls_result"].as_str()), (Some("none"), Some("plaintext")));
    assert_eq!(attempt["outcomes"], serde_json::json!([{"result": "failed", "reason": "rejected", "count": 1}]));
    let mut inbox = Vec::new();
    wait_for("a notice in alice's INBOX", || {
        inbox = stored(&a, ALICE, "INBOX");
        !inbox.is_empty()
    });
    let notice = &inbox[0];
    assert!(notice.contains("Subject: Undelivered Mail Returned to Sender"), "{notice}");
    assert!(notice.contains("report-type=delivery-status"), "{notice}");
    assert!(notice.contains(&format!("Final-Recipient: rfc822; {to}")), "{notice}");
    assert!(notice.contains("Action: failed") && notice.contains("Status: 5.1.1"), "{notice}");
    assert!(notice.contains("550 5.1.1 no such user here"), "{notice}");
    assert_eq!(inbox.len(), 1, "one notice");
}

#[test]
fn an_account_whose_mail_bounces_en_masse_raises_an_alert() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    sink(REFUSING.1, port, "550 5.1.1 no such user here");
    let a = start_a_with_guard(&dns, port, "bounce_alert_after = 3");
    let bounced = |n| a.wait_events(|e| e["event"] == "delivery_attempt" && e["failed"] == 1, n);
    let alerts = || {
        a.events()
            .into_iter()
            .filter(|e| e["event"] == "alert_raised" && e["kind"] == "outbound_bounces")
            .collect::<Vec<_>>()
    };
    for n in 1..=2 {
        submit(&a, &format!("nobody{n}@{}", REFUSING.0), "spam");
        bounced(n);
    }
    assert!(alerts().is_empty(), "two bounces are under the threshold: {:?}", alerts());
    submit(&a, &format!("nobody3@{}", REFUSING.0), "spam");
    let alert = a.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "outbound_bounces");
    assert_eq!((alert["severity"].as_str(), alert["account"].as_str()), (Some("critical"), Some(ALICE)), "{alert}");
    assert_eq!((alert["observed"].as_f64(), alert["threshold"].as_f64()), (Some(3.0), Some(3.0)));
    // Once per episode: a fourth bounce raises none.
    submit(&a, &format!("nobody4@{}", REFUSING.0), "spam");
    bounced(4);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(alerts().len(), 1, "{:?}", alerts());
    // Where the operator sees it.
    let r = a.http("GET", "/api/v1/alerts", Some(&a.admin_token()), None);
    assert!(r.body.contains("outbound_bounces"), "{}", r.body);
}

#[test]
fn a_temporary_refusal_is_tried_again() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    sink(DEFERRING.1, port, "451 4.7.1 greylisted, come back later");
    let a = start_a(&dns, port);
    submit(&a, &format!("someone@{}", DEFERRING.0), "later");
    let attempts = a.wait_events(|e| e["event"] == "delivery_attempt" && e["domain"] == DEFERRING.0, 2);
    for attempt in &attempts[..2] {
        assert_eq!((attempt["deferred"].as_u64(), attempt["failed"].as_u64()), (Some(1), Some(0)), "{attempt}");
        assert!(attempt["reason"].as_str().unwrap().contains("greylisted"), "{attempt}");
    }
    assert!(stored(&a, ALICE, "INBOX").is_empty(), "no notice while it is retried (delay notices are off)");

    // The operator sees it waiting, looks at it, holds it, releases it, retries it, and may
    // take it out of the queue.
    let list = a.cli_ok(&["queue", "list"], None);
    assert!(list.contains(&format!("#1 from {ALICE}")), "{list}");
    assert!(list.contains(&format!("someone@{} (pending): ", DEFERRING.0)) && list.contains("greylisted"), "{list}");
    assert!(list.starts_with("1 message(s), ") && list.contains(", 0 held, "), "{list}");
    let shown = a.cli_ok(&["queue", "show", "1"], None);
    assert!(shown.contains(&format!("From:         {ALICE}")), "{shown}");
    assert!(shown.contains(&format!("someone@{} (pending)", DEFERRING.0)), "{shown}");
    assert!(shown.contains("last answer: ") && shown.contains("greylisted"), "{shown}");
    assert!(shown.contains("Subject: later") && shown.contains("add --body"), "{shown}");
    assert!(!shown.contains("Hello someone"), "no body unless asked: {shown}");
    assert!(a.cli_ok(&["queue", "show", "1", "--body"], None).contains("Hello someone"));
    let attempts = || a.events().iter().filter(|e| e["event"] == "delivery_attempt").count();

    assert!(a.cli_ok(&["queue", "hold", "1"], None).contains("Held queued message #1"));
    let list = a.cli_ok(&["queue", "list"], None);
    assert!(list.contains(&format!("#1 HELD, from {ALICE}")) && list.contains(", 1 held, "), "{list}");
    std::thread::sleep(Duration::from_millis(1500)); // an attempt already under way ends
    let before = attempts();
    std::thread::sleep(Duration::from_secs(3)); // three retry intervals
    assert_eq!(attempts(), before, "a held message is not tried");
    let refused = a.cli(&["queue", "retry", "1"], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is held; release it"));
    assert!(a.cli_ok(&["queue", "retry", "--domain", DEFERRING.0], None).starts_with("0 message(s)"));
    assert!(a.cli_ok(&["queue", "release", "1"], None).contains("Released queued message #1"));
    a.wait_events(|e| e["event"] == "delivery_attempt", before + 1);
    assert!(a.cli_ok(&["queue", "retry", "--domain", &DEFERRING.0.to_uppercase()], None).starts_with("1 message(s)"));
    assert!(a.cli_ok(&["queue", "retry", "1"], None).starts_with("1 message(s)"));
    assert!(a.cli_ok(&["queue", "flush"], None).contains("made due now"), "the old name still works");
    assert!(a.cli_ok(&["queue", "remove", "1"], None).contains("Removed queued message #1"));
    assert_eq!(queued(&a), 0);
    let again = a.cli(&["queue", "remove", "1"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no queued message #1"));
    for gone in
        [&["queue", "show", "1"][..], &["queue", "hold", "1"], &["queue", "release", "1"], &["queue", "retry", "1"]]
    {
        assert!(String::from_utf8_lossy(&a.cli(gone, None).stderr).contains("no queued message #1"), "{gone:?}");
    }
    assert!(a.cli_ok(&["queue", "list"], None).contains("The queue is empty."));
}

#[test]
fn a_message_queued_when_a_is_killed_is_delivered_once_after_the_restart() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    let mut a = start_a(&dns, port);
    submit(&a, &format!("someone@{}", LATER.0), "survivor");
    // Nobody listens yet: the attempt fails, the message waits in the queue.
    a.wait_event(|e| e["event"] == "delivery_attempt" && e["deferred"] == 1);
    std::thread::sleep(Duration::from_millis(300)); // the attempt's record is written
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.kill();

    let later = sink(LATER.1, port, "250 2.1.5 ok");
    a.launch();
    wait_for("the delivery after the restart", || later.taken() >= 1);
    std::thread::sleep(Duration::from_secs(3)); // several ticks of the runner
    assert_eq!(later.taken(), 1, "delivered once");
    assert_eq!(queued(&a), 0);
}

#[test]
fn remote_recipients_count_toward_the_hourly_sending_limit() {
    let dns = TestDns::start(zones()).unwrap();
    let a = TestServer::start_with(Settings {
        sections: vec![dns_section(dns.addr()), "[guard]\nmax_recipients_per_hour = 2".into()],
        ..Settings::default()
    });
    let mut c = a.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    c.cmd(&format!("AUTH PLAIN {}", common::plain(ALICE, PASSWORD)));
    c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    for n in 0..3 {
        assert!(c.cmd(&format!("RCPT TO:<r{n}@{}>", DEFERRING.0)).starts_with("250"));
    }
    c.cmd("DATA");
    c.send("Subject: spam\r\n\r\nbuy\r\n.");
    let reply = c.reply();
    assert!(reply.starts_with("4"), "over the limit: {reply}");
    assert_eq!(queued(&a), 0, "nothing queued");
    a.wait_event(|e| e["event"] == "alert_raised" && e["kind"] == "sending_limit");
}

/// Alice submits to `to` on A over 465 with RFC 3461 parameters on MAIL FROM and RCPT TO.
fn submit_with_dsn(a: &TestServer, to: &str, mail: &str, rcpt: &str, subject: &str) {
    let mut c = a.connect_tls("submissions");
    c.reply();
    let ehlo = c.cmd("EHLO c");
    assert!(ehlo.contains("DSN"), "submission offers DSN: {ehlo}");
    assert!(c.cmd(&format!("AUTH PLAIN {}", common::plain(ALICE, PASSWORD))).starts_with("235"));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}> {mail}")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{to}> {rcpt}")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&format!("From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello {to}.\r\n."));
    assert!(c.reply().starts_with("250 "));
    c.cmd("QUIT");
}

/// The parts of a notice as Python's email parser reads it: the content type, the report
/// type, then one line per field of the delivery-status part (per-message block first), and
/// the content type of the third part.
fn parsed_by_python(notice: &str) -> Option<String> {
    let python = common::outside::program("python3", "apt-get install python3")?;
    let script = r#"
import email, sys
msg = email.message_from_bytes(sys.stdin.buffer.read())
print(msg.get_content_type(), msg.get_param("report-type"))
parts = msg.get_payload()
status = parts[1]
print(status.get_content_type())
for block in status.get_payload():
    for name, value in block.items():
        print(f"{name}: {value}")
print("returned:", parts[2].get_content_type())
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(notice.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn notify_success_gives_a_relayed_notice_with_the_envid_and_orcpt_echoed() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let a = start_a(&dns, b.addr("smtp").port());
    submit_with_dsn(&a, CAROL, "RET=HDRS ENVID=env+2B42", "NOTIFY=SUCCESS ORCPT=rfc822;first@b.test", "tell me");

    // B takes it; its port 25 offers no DSN, so A says "relayed" (RFC 3461 §4.1).
    wait_for("the message in carol's INBOX", || !stored(&b, CAROL, "INBOX").is_empty());
    let mut inbox = Vec::new();
    wait_for("a notice in alice's INBOX", || {
        inbox = stored(&a, ALICE, "INBOX");
        !inbox.is_empty()
    });
    let notice = &inbox[0];
    assert!(notice.contains("Subject: Successful Mail Delivery Report"), "{notice}");
    assert!(!notice.contains("Hello carol"), "RET=HDRS: the header only, never the body: {notice}");
    let Some(parsed) = parsed_by_python(notice) else { return };
    let lines: Vec<&str> = parsed.lines().collect();
    assert_eq!(lines[0], "multipart/report delivery-status", "{parsed}");
    assert_eq!(lines[1], "message/delivery-status", "{parsed}");
    for field in [
        "Original-Envelope-Id: env+42", // decoded from xtext (RFC 3464 §2.2.1)
        "Original-Recipient: rfc822; first@b.test",
        &format!("Final-Recipient: rfc822; {CAROL}"),
        "Action: relayed",
        "Status: 2.0.0",
    ] {
        assert!(lines.contains(&field), "{field} missing: {parsed}");
    }
    assert_eq!(lines.last(), Some(&"returned: text/rfc822-headers"), "{parsed}");
    assert_eq!(inbox.len(), 1, "one notice");
}

#[test]
fn notify_never_to_a_refusing_destination_gives_no_notice() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    sink(REFUSING.1, port, "550 5.1.1 no such user here");
    let a = start_a(&dns, port);
    submit_with_dsn(&a, &format!("nobody@{}", REFUSING.0), "", "NOTIFY=NEVER", "quiet");

    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["failed"], 1, "{attempt}");
    wait_for("an empty queue", || queued(&a) == 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(stored(&a, ALICE, "INBOX").is_empty(), "NOTIFY=NEVER: no failure notice");
}

#[test]
fn requiretls_mail_is_never_sent_to_a_server_without_tls_and_comes_back() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    let plain = sink(PLAIN.1, port, "250 2.1.5 ok");
    let a = start_a(&dns, port);
    let to = format!("someone@{}", PLAIN.0);
    {
        let mut c = a.connect_tls("submissions");
        c.reply();
        assert!(c.cmd("EHLO c").contains("REQUIRETLS"), "offered on submission");
        c.cmd(&format!("AUTH PLAIN {}", common::plain(ALICE, PASSWORD)));
        assert!(c.cmd(&format!("MAIL FROM:<{ALICE}> REQUIRETLS")).starts_with("250"));
        assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
        c.cmd("DATA");
        c.send(&format!("From: <{ALICE}>\r\nTo: <{to}>\r\nSubject: for TLS only\r\n\r\nsecret\r\n."));
        assert!(c.reply().starts_with("250 "));
        c.cmd("QUIT");
    }
    let kept = a.with_store(async |store| store.queued().await.unwrap().first().map(|m| m.requiretls));
    // The runner may have settled it already; if not, the flag is on the queued message.
    assert!(kept.is_none_or(|k| k), "REQUIRETLS stored with the message");

    // RFC 8689 §5: not sent; returned to the sender with a failure notice.
    let attempt = a.wait_event(|e| e["event"] == "delivery_attempt");
    assert_eq!(attempt["failed"], 1, "{attempt}");
    let mut inbox = Vec::new();
    wait_for("a notice in alice's INBOX", || {
        inbox = stored(&a, ALICE, "INBOX");
        !inbox.is_empty()
    });
    let notice = &inbox[0];
    assert!(notice.contains("Action: failed") && notice.contains("Status: 5.7.30"), "{notice}");
    assert_eq!(plain.taken(), 0, "nothing was handed over");
}

#[test]
fn a_failure_notice_for_mail_sent_as_an_alias_reaches_the_account() {
    let dns = TestDns::start(zones()).unwrap();
    let b = start_b(&dns);
    let port = b.addr("smtp").port();
    sink(REFUSING.1, port, "550 5.1.1 no such user here");
    let a = start_a(&dns, port);
    a.cli_ok(&["account", "alias", "add", &format!("news@{DOMAIN}"), ALICE], None);
    let mut c = a.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    c.cmd(&format!("AUTH PLAIN {}", common::plain(ALICE, PASSWORD)));
    assert!(c.cmd(&format!("MAIL FROM:<news@{DOMAIN}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<nobody@{}>", REFUSING.0)).starts_with("250"));
    c.cmd("DATA");
    c.send(&format!("From: <news@{DOMAIN}>\r\nSubject: from the alias\r\n\r\nhi\r\n."));
    assert!(c.reply().starts_with("250 "));
    c.cmd("QUIT");

    let mut inbox = Vec::new();
    wait_for("a notice in alice's INBOX", || {
        inbox = stored(&a, ALICE, "INBOX");
        !inbox.is_empty()
    });
    assert!(inbox[0].contains(&format!("To: <news@{DOMAIN}>")) && inbox[0].contains("Action: failed"), "{}", inbox[0]);
}
