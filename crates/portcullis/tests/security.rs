//! The locks on the gates: STARTTLS on 587, TLS versions, credentials and senders, against the
//! real server process. Limits, timeouts and hostile input are in `hostile.rs`.

mod common;

use common::*;

#[test]
fn submission_port_refuses_everything_but_starttls_before_tls() {
    let server = TestServer::start();
    let mut c = server.connect_plain("submission");
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO plain.client");
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(c.cmd(&format!("MAIL FROM:<{ALICE}>")), "530 5.7.0 Must issue a STARTTLS command first");
    // STARTTLS with a command injected behind it in the same packet.
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    let mut c = c.upgrade(server.client_config(rustls::ALL_VERSIONS));
    // The first reply under TLS must answer our EHLO, not the injected MAIL.
    let ehlo = c.cmd("EHLO tls.client");
    assert!(ehlo.starts_with("250-") && ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD))).starts_with("235"));
    server.wait_event(|e| e["event"] == "protocol_violation" && e["what"] == "AUTH before STARTTLS");
}

#[test]
fn tls_below_1_2_and_below_min_version_are_refused() {
    let server = TestServer::start_with(Settings { tls: vec!["min_version = \"1.3\"".into()], ..Settings::default() });
    for listener in ["submissions", "pop3s"] {
        let tls12 = server.connect_plain(listener).handshake(server.client_config(&[&rustls::version::TLS12]));
        assert!(tls12.is_err(), "{listener} accepted TLS 1.2 with min_version = 1.3");
        let mut tls13 =
            server.connect_plain(listener).handshake(server.client_config(&[&rustls::version::TLS13])).unwrap();
        assert!(!tls13.line().is_empty());
    }
    server.wait_event(|e| e["event"] == "tls_failed");
}

#[test]
fn tls_1_2_works_by_default() {
    let server = TestServer::start();
    let mut c =
        server.connect_plain("submissions").handshake(server.client_config(&[&rustls::version::TLS12])).unwrap();
    assert!(c.reply().starts_with("220"));
    let e = server.wait_event(|e| e["event"] == "tls_established");
    assert_eq!(e["version"], "TLSv1.2");
    assert!(e["cipher"].as_str().unwrap().contains("GCM") || e["cipher"].as_str().unwrap().contains("CHACHA20"));
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start();
    let mut answers = Vec::new();
    for user in [ALICE, "nobody@example.test"] {
        let mut c = server.connect_tls("submissions");
        c.reply();
        c.cmd("EHLO c");
        answers.push(c.cmd(&format!("AUTH PLAIN {}", plain(user, "not-the-password"))));
        let mut p = server.connect_tls("pop3s");
        p.line();
        p.cmd(&format!("USER {user}"));
        answers.push(p.cmd("PASS not-the-password"));
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[1], answers[3]);
    assert!(answers[0].starts_with("535 5.7.8"));
    assert!(answers[1].starts_with("-ERR [AUTH]"));
    let failures = server.wait_events(|e| e["event"] == "auth_failed", 4);
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(!server.events().iter().any(|e| e.to_string().contains("not-the-password")), "secrets are never logged");
}

#[test]
fn sender_must_be_the_authenticated_user() {
    let server = TestServer::start();
    let mut c = server.connect_tls("submissions");
    c.reply();
    c.cmd("EHLO c");
    c.cmd(&format!("AUTH PLAIN {}", plain(ALICE, PASSWORD)));
    assert!(c.cmd(&format!("MAIL FROM:<{BOB}>")).starts_with("553 5.7.1"));
}
