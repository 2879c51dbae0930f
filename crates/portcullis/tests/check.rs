//! `portcullis check` against real servers on loopback: Portcullis itself (clean), and a weak
//! peer built from Debian's Dovecot and Postfix with planted weaknesses, every one of which
//! must be reported, and nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, outside, wait_listening, TestServer, BIN};
use portcullis_testpostfix::Postfix;
use serde_json::Value;

fn check(args: &[&str]) -> Output {
    Command::new(BIN).arg("check").args(args).output().expect("run portcullis check")
}

fn json_report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn port_report(report: &Value, port: u16) -> &Value {
    report["ports"].as_array().unwrap().iter().find(|p| p["port"] == port).unwrap_or_else(|| panic!("no port {port}"))
}

fn finding_ids(report: &Value, port: u16) -> Vec<String> {
    let mut ids: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["port"] == port)
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn portcullis_itself_is_clean() {
    let server = TestServer::start();
    let services = ["submissions", "submission", "imaps", "pop3s"];
    let closed = free_port("127.0.0.1");
    let mut ports: Vec<String> = services.iter().map(|s| server.addr(s).port().to_string()).collect();
    ports.push(closed.to_string());
    let ports = ports.join(",");
    let cert = server.cert_path();
    let started = Instant::now();
    let out = check(&["127.0.0.1", "--ports", &ports, "--ca", cert.to_str().unwrap(), "--json", "--timeout", "3s"]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_report(&out);

    assert_eq!(report["grade"], "A", "{report:#}");
    // The test certificate names mail.example.test, not 127.0.0.1: with an address and no
    // --server-name, the name is left unchecked, and that is all that may be said.
    for f in report["findings"].as_array().unwrap() {
        assert_eq!((&f["severity"], &f["id"]), (&Value::from("info"), &Value::from("cert-name-unchecked")), "{f:#}");
    }
    for service in services {
        let p = port_report(&report, server.addr(service).port());
        assert_eq!(p["state"], "open");
        assert_eq!(p["service"], service, "{p:#}");
        assert_eq!(p["grade"], "A");
        assert_eq!(p["tls"]["mode"], if service == "submission" { "starttls" } else { "implicit" });
        let versions = &p["tls"]["versions"];
        assert_eq!(
            [
                &versions["SSLv3"],
                &versions["TLSv1.0"],
                &versions["TLSv1.1"],
                &versions["TLSv1.2"],
                &versions["TLSv1.3"]
            ],
            [false, false, false, true, true].map(Value::from).each_ref(),
            "{p:#}"
        );
        assert_eq!(p["certificate"]["trusted"], true);
        assert!(p["notes"].as_array().unwrap().is_empty(), "{p:#}");
        // TLS 1.2 only with the extended master secret (RFC 7627): taken up when offered, and a
        // client that does not offer it is refused.
        let probes = &p["tls"]["probes"];
        assert!(probes["TLSv1.2"].as_str().unwrap().ends_with(", extended master secret"), "{p:#}");
        assert!(probes["TLSv1.2 without EMS"].as_str().unwrap().starts_with("alert"), "{p:#}");
    }
    assert_eq!(port_report(&report, closed)["state"], "closed");
    assert!(elapsed < Duration::from_secs(15), "the audit took {elapsed:?}");

    // With the name clients use there is nothing at all, and --fail-on low passes.
    let out = check(&[
        "127.0.0.1",
        "--ports",
        &ports,
        "--ca",
        cert.to_str().unwrap(),
        "--server-name",
        common::HOSTNAME,
        "--fail-on",
        "low",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("No findings.") && table.contains("Overall grade: A"), "{table}");

    // Being audited is not an attack: nothing was banned, nothing broke.
    let events = server.events();
    assert!(
        !events.iter().any(|e| e["event"] == "ban_added" || e["event"] == "internal_error"),
        "{:?}",
        events.iter().filter(|e| e["event"] == "ban_added" || e["event"] == "internal_error").collect::<Vec<_>>()
    );
}

/// A child daemon, stopped when the test ends however it ends.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test CA, a good certificate and an expired one (both from that CA, for
/// weak.example.test), written as PEM files into `dir`.
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Weak Peer Test CA");
    ca.not_before = rcgen::date_time_ymd(2019, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2090, 1, 1);
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    for (name, from, to) in [("good", (2020, 1, 1), (2090, 1, 1)), ("expired", (2020, 1, 1), (2021, 1, 1))] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![WEAK_NAME.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, WEAK_NAME);
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        std::fs::write(dir.join(format!("{name}.pem")), params.signed_by(&key, &issuer).unwrap().pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

const WEAK_NAME: &str = "weak.example.test";

/// Dovecot 2.3 (Debian 12). Nobody ever logs in: the static passdb only has to exist for
/// Dovecot to offer authentication at all.
fn dovecot_config(dir: &Path, instance: &str, body: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        "base_dir = {d}/{instance}-run\n\
         state_dir = {d}/{instance}-state\n\
         instance_name = portcullis-check-{instance}\n\
         log_path = {d}/{instance}.log\n\
         listen = 127.0.0.1\n\
         ssl_prefer_server_ciphers = yes\n\
         passdb {{\n  driver = static\n  args = password=never-used-{instance}\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n\
         {body}"
    );
    let path = dir.join(format!("{instance}.conf"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start_dovecot(dovecot: &Path, name: &'static str, config: &Path) -> Daemon {
    let child = Command::new(dovecot)
        .arg("-F")
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dovecot");
    Daemon { name, child }
}

#[test]
fn a_weak_dovecot_and_postfix_get_exactly_their_planted_findings() {
    if !outside::root("Dovecot and Postfix set up and drop privileges as root") {
        return;
    }
    let install_dovecot = "apt-get install dovecot-imapd dovecot-pop3d";
    let Some(dovecot) = outside::program("dovecot", install_dovecot) else { return };
    // dovecot-core alone has the binary but neither protocol.
    for part in ["imap-login", "pop3-login"] {
        if !outside::file(&Path::new("/usr/lib/dovecot").join(part), install_dovecot) {
            return;
        }
    }
    let Some(postfix_bin) = outside::program("postfix", "apt-get install postfix") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        // Dovecot's and Postfix's unprivileged processes must reach the certificates and the
        // auth socket.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    certificates(dir);
    let d = dir.display();
    let (imap, pop3, imaps, submission) =
        (free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1"));

    // Weakness 1 (IMAP and POP3 on their legacy plaintext ports): logins before TLS. Their TLS
    // behind STARTTLS is good (valid chain, TLS >= 1.2, AEAD with ECDHE only), and must not be
    // blamed for anything.
    let plain = dovecot_config(
        dir,
        "plain",
        &format!(
            "protocols = imap pop3\n\
             ssl = yes\n\
             ssl_cert = <{d}/good.pem\n\
             ssl_key = <{d}/good.key\n\
             ssl_min_protocol = TLSv1.2\n\
             ssl_cipher_list = ECDHE+AESGCM:ECDHE+CHACHA20\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
             service auth {{\n  unix_listener {d}/auth-postfix {{\n    mode = 0666\n  }}\n}}\n"
        ),
    );
    // Weaknesses 2 and 3 (IMAPS): TLS 1.0 (and so 1.1) accepted, and an expired certificate.
    // OpenSSL 3 needs security level 0 for TLS 1.0, and TLS 1.0 needs a CBC suite, which TLS 1.2
    // then accepts too: that is the one consequence the report must also name. Key exchange
    // stays ECDHE, so "no forward secrecy" must not appear.
    let legacy = dovecot_config(
        dir,
        "legacy",
        &format!(
            "protocols = imap\n\
             ssl = required\n\
             ssl_cert = <{d}/expired.pem\n\
             ssl_key = <{d}/expired.key\n\
             ssl_min_protocol = TLSv1\n\
             ssl_cipher_list = ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {imaps}\n  }}\n}}\n"
        ),
    );
    let _plain = start_dovecot(&dovecot, "dovecot (imap, pop3)", &plain);
    let _legacy = start_dovecot(&dovecot, "dovecot (imaps)", &legacy);

    // Weakness 4 (submission): AUTH offered and accepted before STARTTLS. Otherwise sound:
    // good chain, TLS >= 1.2 with AEAD and ECDHE only, and MAIL FROM refused without AUTH.
    let main_cf = format!(
        "myhostname = submission.example.test\n\
         smtpd_tls_cert_file = {d}/good.pem\n\
         smtpd_tls_key_file = {d}/good.key\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_auth_only = no\n\
         smtpd_tls_protocols = >=TLSv1.2\n\
         smtpd_tls_mandatory_protocols = >=TLSv1.2\n\
         smtpd_tls_ciphers = high\n\
         smtpd_tls_mandatory_ciphers = high\n\
         tls_high_cipherlist = ECDHE+AESGCM:ECDHE+CHACHA20\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = dovecot\n\
         smtpd_sasl_path = {d}/auth-postfix\n\
         smtpd_delay_reject = no\n\
         smtpd_sender_restrictions = permit_sasl_authenticated, reject\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n"
    );
    let listener = format!("127.0.0.1:{submission} inet n - n - - smtpd\n");
    let _postfix = Postfix::start(&postfix_bin, dir, &main_cf, &listener, &[submission]);

    wait_listening("127.0.0.1", imap, "dovecot", Some(&dir.join("plain.log")));
    wait_listening("127.0.0.1", pop3, "dovecot", Some(&dir.join("plain.log")));
    wait_listening("127.0.0.1", imaps, "dovecot", Some(&dir.join("legacy.log")));

    let ports = format!("{imap}/imap,{pop3}/pop3,{imaps}/imaps,{submission}/submission");
    let ca = dir.join("ca.pem");
    let args =
        ["127.0.0.1", "--ports", &ports, "--ca", ca.to_str().unwrap(), "--server-name", WEAK_NAME, "--timeout", "3s"];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = check(&json_args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_report(&out);

    // On every port too: OpenSSL (3.0 here) takes the extended master secret up when offered,
    // and goes on with TLS 1.2 without it when the client does not offer it.
    let expected: [(u16, &[&str], &str); 4] = [
        (imap, &["plaintext-login", "tls1.2-without-ems-accepted"], "D"),
        (pop3, &["plaintext-login", "tls1.2-without-ems-accepted"], "D"),
        (
            imaps,
            &[
                "cert-expired",
                "non-aead-cipher-accepted",
                "tls1.0-accepted",
                "tls1.1-accepted",
                "tls1.2-without-ems-accepted",
            ],
            "F",
        ),
        (submission, &["auth-before-tls", "tls1.2-without-ems-accepted"], "D"),
    ];
    for (port, ids, grade) in expected {
        assert_eq!(finding_ids(&report, port), ids, "port {port}: {report:#}");
        assert_eq!(port_report(&report, port)["grade"], grade, "port {port}: {report:#}");
    }
    assert_eq!(report["grade"], "F");
    let severity = |port: u16, id: &str| {
        report["findings"].as_array().unwrap().iter().find(|f| f["port"] == port && f["id"] == id).unwrap()["severity"]
            .clone()
    };
    assert_eq!(severity(imaps, "cert-expired"), "critical");
    assert_eq!(severity(imaps, "tls1.0-accepted"), "high");
    assert_eq!(severity(imap, "plaintext-login"), "high");
    assert_eq!(severity(submission, "auth-before-tls"), "high");
    assert_eq!(severity(submission, "tls1.2-without-ems-accepted"), "low");
    for f in report["findings"].as_array().unwrap() {
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f:#}");
    }

    // What is right about the peer is seen as right, not merely not reported.
    for (port, service, mode) in [
        (imap, "imap", "starttls"),
        (pop3, "pop3", "starttls"),
        (imaps, "imaps", "implicit"),
        (submission, "submission", "starttls"),
    ] {
        let p = port_report(&report, port);
        assert_eq!((p["service"].as_str(), p["tls"]["mode"].as_str()), (Some(service), Some(mode)), "{p:#}");
        assert_eq!(p["tls"]["versions"]["TLSv1.2"], true, "{p:#}");
        assert_eq!(p["tls"]["versions"]["TLSv1.3"], true, "{p:#}");
        assert_eq!(p["tls"]["versions"]["SSLv3"], false, "{p:#}");
        assert_eq!(p["certificate"]["trusted"], true, "{p:#}");
        assert_eq!(p["certificate"]["name_matches"], true, "{p:#}");
    }
    let legacy_port = port_report(&report, imaps);
    assert!(legacy_port["certificate"]["days_left"].as_i64().unwrap() < 0);
    assert_eq!(legacy_port["tls"]["versions"]["TLSv1.0"], true);
    // The evidence: the extended master secret taken up when offered, TLS 1.2 without it too.
    let probes = &port_report(&report, submission)["tls"]["probes"];
    assert!(probes["TLSv1.2"].as_str().unwrap().ends_with(", extended master secret"), "{probes:#}");
    assert!(probes["TLSv1.2 without EMS"].as_str().unwrap().starts_with("TLSv1.2 "), "{probes:#}");
    assert!(port_report(&report, submission)["certificate"]["days_left"].as_i64().unwrap() > 30);

    // The table, and --fail-on for monitoring: exit status 2 at critical, 0 when the
    // threshold is above everything found.
    let mut fail_args = args.to_vec();
    fail_args.extend(["--fail-on", "critical"]);
    let out = check(&fail_args);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_eq!(out.status.code(), Some(2), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("Overall grade: F"), "{table}");
    assert!(table.contains("fix: Refuse logins before TLS"), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at or above critical"));
    let sub_only = submission.to_string();
    let out = check(&[
        "127.0.0.1",
        "--ports",
        &sub_only,
        "--ca",
        ca.to_str().unwrap(),
        "--server-name",
        WEAK_NAME,
        "--fail-on",
        "critical",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
