//! Delivery to receivers nobody here wrote: Postfix's `smtp-sink` (plain; answering 4xx;
//! answering 5xx, whose reply must reach the bounce; closing the connection mid-DATA), and a
//! private Postfix `smtpd` with STARTTLS, whose log must show the TLS session. smtp-sink has
//! no TLS, hence the real smtpd for that case.

mod common;

use common::*;
use portcullis_delivery::{AttemptOutcome, CertificateCheck, PolicyKind, Why};
use portcullis_queue::{notice, NoticeSettings, Original, RecipientStatus, ReportAction};
use portcullis_smtp_client::{Cause, Disposition, Reason, SessionFailure, Stage};
use portcullis_testdns::TestDns;
use portcullis_testpostfix::Postfix;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

struct Sink {
    child: Child,
    port: u16,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `smtp-sink` on 127.0.0.1 with `options`, dumping what it receives.
fn sink(options: &[&str]) -> Option<Sink> {
    let program = have("smtp-sink")?;
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let dump = dir.path().join("dump");
    let port = free_port(IpAddr::V4(LOCALHOST));
    let mut command = Command::new(program);
    if is_root() {
        command.args(["-u", "nobody"]); // required when started as root
    }
    command.arg("-D").arg(&dump).args(options).arg(format!("127.0.0.1:{port}")).arg("16");
    let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_listening(port, "smtp-sink", None);
    Some(Sink { child, port, dump, _dir: dir })
}

fn wait_listening(port: u16, what: &str, log: Option<&Path>) {
    let started = Instant::now();
    while TcpStream::connect((LOCALHOST, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}: {}",
            log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sink_courier(port: u16) -> (TestDns, portcullis_delivery::RemoteCourier) {
    let dns = TestDns::start(zone_with_mx("sink.test", LOCALHOST)).unwrap();
    let courier = courier(&dns, settings(port), &[]);
    (dns, courier)
}

#[tokio::test]
async fn smtp_sink_takes_a_plain_delivery() {
    let Some(sink) = sink(&[]) else { return };
    let (_dns, courier) = sink_courier(sink.port);
    let report = deliver(&courier, "sink.test", vec![message(&["a@sink.test", "b@sink.test"])]).await;
    for r in &report.messages[0] {
        assert_eq!(r.disposition, Disposition::Delivered, "{report:#?}");
        assert_eq!(r.remote_mta.as_deref(), Some("mx.sink.test"));
    }
    let attempt = &report.attempts[0];
    assert_eq!(attempt.outcome, AttemptOutcome::Completed);
    assert_eq!((attempt.policy, attempt.tls.is_none()), (PolicyKind::None, true), "smtp-sink has no TLS");
    assert_eq!(attempt.certificate, CertificateCheck::NotChecked);
    let started = Instant::now();
    let dump = loop {
        let text = std::fs::read_to_string(&sink.dump).unwrap_or_default();
        if text.contains("Hello.") || started.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(dump.contains("Subject: outbound test"), "{dump}");
    assert!(dump.contains("\n.dot line"), "dot-stuffing undone by the receiver: {dump}");
    assert!(dump.contains("a@sink.test") && dump.contains("b@sink.test"), "{dump}");
}

#[tokio::test]
async fn a_4xx_from_smtp_sink_is_temporary() {
    let Some(sink) = sink(&["-r", "RCPT"]) else { return };
    let (_dns, courier) = sink_courier(sink.port);
    let report = deliver(&courier, "sink.test", vec![message(&["a@sink.test"])]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Temporary, "{report:#?}");
    assert_eq!(r.why.reply().map(|reply| reply.code), Some(450));
    assert_eq!(r.status.to_string(), "4.3.0");
}

#[tokio::test]
async fn a_5xx_from_smtp_sink_is_permanent_and_its_reply_reaches_the_bounce() {
    let Some(sink) = sink(&["-f", "RCPT", "-B", "550 5.1.1 No such user here"]) else { return };
    let (_dns, courier) = sink_courier(sink.port);
    let message = message(&["nobody@sink.test"]);
    let report = deliver(&courier, "sink.test", vec![message.clone()]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Permanent, "{report:#?}");
    assert!(matches!(&r.why, Why::Smtp(Reason::Reply { stage: Stage::RcptTo, .. })));
    assert_eq!(r.why.reply().unwrap().one_line(), "550 5.1.1 No such user here");

    // The queue's bounce for it quotes the remote server.
    let status = RecipientStatus {
        address: r.address.clone(),
        original: None,
        notify: None,
        action: ReportAction::Failed,
        status: r.status,
        remote_mta: r.remote_mta.clone(),
        reply: r.why.reply().cloned(),
        explanation: None,
        last_attempt: Some(SystemTime::now()),
        will_retry_until: None,
    };
    let original = Original {
        sender: &message.sender,
        envid: None,
        ret: None,
        arrival: SystemTime::now(),
        content: &message.content,
    };
    let bounce = notice(&NoticeSettings::default(), &original, &[status], SystemTime::now(), "t").unwrap();
    let text = String::from_utf8(bounce.content).unwrap();
    assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 No such user here\r\n"), "{text}");
    assert!(text.contains("Remote-MTA: dns; mx.sink.test\r\n"), "{text}");
    assert!(text.contains("Status: 5.1.1\r\n"), "{text}");
}

#[tokio::test]
async fn smtp_sink_closing_mid_data_is_temporary() {
    let Some(sink) = sink(&["-q", "."]) else { return };
    let (_dns, courier) = sink_courier(sink.port);
    let report = deliver(&courier, "sink.test", vec![message(&["a@sink.test"])]).await;
    let r = &report.messages[0][0];
    assert_eq!(r.disposition, Disposition::Temporary, "{report:#?}");
    assert!(
        matches!(&r.why, Why::Smtp(Reason::Session(SessionFailure { stage: Stage::DataEnd, cause: Cause::Closed }))),
        "{r:?}"
    );
}

#[tokio::test]
async fn postfix_receives_over_starttls_and_logs_it() {
    let Some(postfix) = have("postfix") else { return };
    if !is_root() {
        // Postfix sets up its queue and drops privileges as root; CI runs as root.
        eprintln!("SKIPPED: the Postfix receiver needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ca = TestCa::new("Postfix Test CA");
    let identity = ca.issue(&["mx.postfix.test"]);
    let pem = |der: &[u8]| {
        use base64_pem::encode;
        encode("CERTIFICATE", der)
    };
    let chain: String = identity.chain.iter().map(|c| pem(c)).collect();
    let port = free_port(IpAddr::V4(LOCALHOST));
    let instance = Postfix::start_tls_receiver(
        Path::new(&postfix),
        dir,
        "postfix.test",
        port,
        &chain,
        &identity.key.serialize_pem(),
    );

    let dns = TestDns::start(zone_with_mx("postfix.test", LOCALHOST)).unwrap();
    let courier = courier(&dns, settings(port), std::slice::from_ref(&ca.der));
    let report = deliver(&courier, "postfix.test", vec![message(&["bob@postfix.test"])]).await;
    assert_eq!(report.messages[0][0].disposition, Disposition::Delivered, "{report:#?}");
    let attempt = &report.attempts[0];
    let tls = attempt.tls.as_ref().expect("STARTTLS was used");
    assert!(tls.version == "TLSv1.3" || tls.version == "TLSv1.2", "{tls:?}");
    assert_eq!(attempt.certificate, CertificateCheck::Valid, "the test CA is trusted and the name matches");
    let started = Instant::now();
    loop {
        let log = instance.log();
        let tls_line = log.lines().any(|l| l.contains("TLS connection established from") && l.contains("TLSv1."));
        if tls_line && log.contains("status=sent") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no TLS session or delivery in Postfix's log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PEM armour for the certificates Postfix reads (rcgen gives DER for a CA-issued chain).
mod base64_pem {
    pub fn encode(label: &str, der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }
}
