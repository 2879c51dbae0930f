//! Port 25 with a foreign mail server in front of it: Debian's Postfix, a private instance run
//! from a temp dir on loopback ports (never the system service), relays to Portcullis over
//! STARTTLS (`smtp_tls_security_level = encrypt`) from 127.0.0.31, with Debian's OpenDKIM as
//! its signing milter. What comes out the other side: OpenDKIM's signature verifies
//! (dkim=pass, DMARC aligned), a body changed after signing fails DKIM, and a spoofed p=reject
//! sender relayed from an address outside the SPF record is refused with 550 5.7.1, which
//! Postfix logs as the remote server's answer. The test DNS server (crates/testdns) serves the
//! domains, OpenDKIM's key included.
//!
//! Needs root (Postfix drops privileges), `postfix` and `opendkim`: otherwise the shared skip
//! rule (tests/common/outside.rs).

mod common;

use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::mx::*;
use common::{free_port, outside, wait_listening, Client, Settings, TestServer, BOB};
use portcullis_dkim_sign::{Algorithm, SigningKey};
use portcullis_testdns::TestDns;
use portcullis_testpostfix::Postfix;

/// OpenDKIM's selector for GOOD (the World's own key stays at `sel`).
const OPENDKIM_SELECTOR: &str = "pf";

/// The private Postfix relaying to Portcullis, with its two ways in.
struct Relay {
    postfix: Postfix,
    /// Mail submitted here is signed by OpenDKIM.
    signed_port: u16,
    /// Mail submitted here is relayed as it is.
    unsigned_port: u16,
}

impl Relay {
    /// Hands a message to Postfix over SMTP from 127.0.0.1 (in its mynetworks, so relayed).
    fn submit(&self, port: u16, from: &str, to: &str, data: &[u8]) {
        let mut c = Client::plain(TcpStream::connect(("127.0.0.1", port)).unwrap());
        assert!(c.reply().starts_with("220"), "postfix greeting");
        assert!(c.cmd("EHLO client.sender.test").starts_with("250"));
        let reply = send(&mut c, from, to, data);
        assert!(reply.starts_with("250"), "postfix took the message: {reply}\n{}", self.postfix.log());
        c.cmd("QUIT");
    }
}

/// OpenDKIM in the foreground, signing for GOOD; killed when the test ends.
struct OpenDkim(Child);

impl Drop for OpenDkim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_opendkim(opendkim: &Path, dir: &Path, key: &SigningKey) -> (OpenDkim, u16) {
    let port = free_port("127.0.0.1");
    let key_file = dir.join("pf.key");
    std::fs::write(&key_file, key.to_pem().as_bytes()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = dir.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Mode s\nDomain {GOOD}\nSelector {OPENDKIM_SELECTOR}\nKeyFile {}\n\
             Socket inet:{port}@127.0.0.1\nCanonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\n\
             InternalHosts 127.0.0.1\nBackground no\nSyslog no\nPidFile {}\n",
            key_file.display(),
            dir.join("opendkim.pid").display()
        ),
    )
    .unwrap();
    let log = dir.join("opendkim.log");
    let child = Command::new(opendkim)
        .arg("-f")
        .arg("-x")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = OpenDkim(child);
    wait_listening("127.0.0.1", port, "opendkim", Some(&log));
    (daemon, port)
}

fn start_postfix(postfix: &Path, dir: &Path, portcullis: u16, milter: u16) -> Relay {
    let (signed_port, unsigned_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let main_cf = format!(
        "myhostname = mx.{GOOD}\n\
         myorigin = {GOOD}\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject\n\
         relayhost = [127.0.0.1]:{portcullis}\n\
         smtp_dns_support_level = disabled\n\
         smtp_bind_address = {GOOD_IP}\n\
         smtp_helo_name = mx.{GOOD}\n\
         smtp_tls_security_level = encrypt\n\
         smtp_tls_loglevel = 1\n\
         milter_protocol = 6\n\
         milter_default_action = tempfail\n\
         sender_dependent_default_transport_maps = inline:{{ ceo@{GOOD}=spoof }}\n\
         notify_classes =\n"
    );
    let listeners = format!(
        "127.0.0.1:{signed_port} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:{milter}\n\
         127.0.0.1:{unsigned_port} inet n - n - - smtpd\n\
         smtp      unix  - - n - - smtp\n\
         spoof     unix  - - n - - smtp -o smtp_bind_address={SPOOFER_IP} -o smtp_helo_name=spoofer.example\n"
    );
    let postfix = Postfix::start(postfix, dir, &main_cf, &listeners, &[signed_port, unsigned_port]);
    Relay { postfix, signed_port, unsigned_port }
}

#[test]
fn postfix_with_opendkim_delivers_over_starttls_and_spoofs_are_refused() {
    if !outside::root("Postfix sets up and drops privileges as root") {
        return;
    }
    let Some(postfix_bin) = outside::program("postfix", "apt-get install postfix") else { return };
    let Some(opendkim_bin) = outside::program("opendkim", "apt-get install opendkim opendkim-tools") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        // Postfix's unprivileged processes must reach their directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // The test domains, with OpenDKIM's key published beside the World's.
    let key = SigningKey::generate(Algorithm::Ed25519Sha256).unwrap();
    let opendkim_key = SigningKey::generate(Algorithm::RsaSha256).unwrap();
    let dns =
        TestDns::start(zones(&key).txt(&SigningKey::dns_name(OPENDKIM_SELECTOR, GOOD), &opendkim_key.dns_record()))
            .unwrap();
    let world = World { dns, key };
    let server = TestServer::start_with(Settings::mx(world.addr()));

    // OpenDKIM refuses a configuration file below a directory others may write to (/tmp), so
    // its files live under Cargo's target directory instead.
    let opendkim_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_opendkim, milter) = start_opendkim(&opendkim_bin, opendkim_dir.path(), &opendkim_key);
    let relay = start_postfix(&postfix_bin, dir, server.addr("smtp").port(), milter);

    // 1. Signed by OpenDKIM, relayed over STARTTLS from an address in the SPF record.
    let from = format!("alice@{GOOD}");
    relay.submit(relay.signed_port, &from, BOB, message(&from, BOB, "via postfix").as_bytes());
    let received = server.wait_event(|e| e["event"] == "message_received");
    assert_eq!(
        received["peer"].as_str().and_then(|p| p.parse::<std::net::SocketAddr>().ok()).map(|a| a.ip()),
        Some(GOOD_IP.parse::<IpAddr>().unwrap()),
        "{received}"
    );
    assert!(received["tls_version"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "over STARTTLS: {received}");
    relay.postfix.wait_log("status=sent");
    let inbox = stored(&server, BOB, "INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(header(&inbox[0], "DKIM-Signature").is_some_and(|s| s.contains(&format!("s={OPENDKIM_SELECTOR}"))));
    let results = authentication_results(&inbox[0]);
    for word in ["spf=pass", "dkim=pass", "dmarc=pass", &format!("header.s={OPENDKIM_SELECTOR}")] {
        assert!(results.contains(word), "{word} missing from {results}");
    }
    assert!(header(&inbox[0], "Received").unwrap().contains("with ESMTPS"), "{}", inbox[0]);

    // 2. Signed before Postfix (by us, with the World's key), changed after: dkim=fail, while
    //    SPF still passes and aligns, so DMARC passes and the message is taken.
    let mut tampered = world.signer().sign_message(message(&from, BOB, "changed").as_bytes()).unwrap();
    let at = tampered.windows(5).position(|w| w == b"Hello").unwrap();
    tampered[at] = b'J';
    relay.submit(relay.unsigned_port, &from, BOB, &tampered);
    server.wait_events(|e| e["event"] == "message_received", 2);
    let inbox = stored(&server, BOB, "INBOX");
    assert_eq!(inbox.len(), 2);
    let results = authentication_results(&inbox[1]);
    assert!(results.contains("dkim=fail") && results.contains("dmarc=pass"), "{results}");

    // 3. A p=reject author relayed from outside its SPF record, unsigned: 550 5.7.1, which
    //    Postfix reports as the remote server's answer; nothing is stored.
    let ceo = format!("ceo@{GOOD}");
    relay.submit(relay.unsigned_port, &ceo, BOB, message(&ceo, BOB, "wire money").as_bytes());
    let verdict = server.wait_event(|e| e["event"] == "sender_verdict" && e["decision"] == "reject");
    assert_eq!((verdict["spf"].as_str(), verdict["dmarc"].as_str()), (Some("fail"), Some("fail")), "{verdict}");
    let log = relay.postfix.wait_log("said: 550 5.7.1");
    assert!(log.contains("status=bounced"), "{log}");
    assert_eq!(stored(&server, BOB, "INBOX").len(), 2, "the spoof was not stored");
    assert!(stored(&server, BOB, "Junk").is_empty());
}
